import XCTest

@testable import TransformerCore

/// Central finite differences against the analytic backward pass, for every parameter tensor,
/// of a GPT-2, a Llama (grouped-query attention, head_dim·heads ≠ hidden size, untied head,
/// llama3 rotary scaling) and a Qwen2 (q/k/v biases, tied, one key/value head) model. The
/// configs have odd sizes (vocabulary 11, intermediate 10) so every scalar remainder path runs.
final class GradientCheckTests: EveryPathTestCase {
    var cfg = ModelConfig(nLayer: 2, nHead: 3, nEmbd: 12, nCtx: 8, vocabSize: 11)

    static let configs: [(String, ModelConfig)] = [
        ("gpt2", ModelConfig(nLayer: 2, nHead: 3, nEmbd: 12, nCtx: 8, vocabSize: 11)),
        (
            "llama",
            ModelConfig(
                llama: .llama, nLayer: 2, nHead: 4, nKVHead: 2, nEmbd: 12, headDim: 4, intermediateSize: 10,
                nCtx: 8, vocabSize: 11, ropeTheta: 50,
                ropeScaling: RopeScaling(factor: 4, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositions: 4),
                tieWordEmbeddings: false)
        ),
        (
            "qwen2",
            ModelConfig(
                llama: .qwen2, nLayer: 2, nHead: 3, nKVHead: 1, nEmbd: 12, intermediateSize: 10,
                nCtx: 8, vocabSize: 11, rmsNormEpsilon: 1e-6, ropeTheta: 100, tieWordEmbeddings: true)
        ),
    ]

    /// Runs `body` on every kernel path for each architecture's config.
    func forEachArchitecture(_ body: () -> Void) {
        for (_, c) in Self.configs {
            cfg = c
            forEachPath(body)
        }
    }

    /// A left-padded batch of two sequences (lengths 6 and 4) with next-token targets.
    func batch() -> (TokenBatch, [Int32]) { gradientCheckBatch(vocab: cfg.vocabSize) }

    /// Checks, for each tensor, a few elements: the largest analytic gradient and random others.
    func checkTensors(_ model: TransformerModel, objective: () -> Double, analytic: () -> Void, line: UInt = #line) {
        analytic()
        var rng = SeededRandom(seed: 5)
        var checked = 0
        for slot in model.layout.slots {
            let grad = Array(model.gradient(slot.name))
            var picks = [grad.indices.max { abs(grad[$0]) < abs(grad[$1]) }!]
            for _ in 0..<3 { picks.append(rng.int(below: slot.count)) }
            for i in picks {
                assertFiniteDifference(
                    model.parameters.pointer + slot.offset + i, analytic: grad[i], "\(cfg.architecture) \(slot.name)[\(i)]",
                    objective: objective, line: line)
                checked += 1
            }
        }
        XCTAssertEqual(checked, model.layout.slots.count * 4)
    }

    func testLanguageModelLoss() {
        forEachArchitecture {
            let model = randomModel(cfg, seed: 3, scale: 10)
            let (b, targets) = batch()
            let acts = Activations(config: cfg, batch: b.batch, length: b.length)
            let loss = LanguageModelLoss(model: model, batch: b, targets: targets, acts: acts, zeroGradients: model.zeroGradients)
            checkTensors(model, objective: loss.value, analytic: loss.gradients)
        }
    }

    func testScalarHeadAtLastToken() {
        forEachArchitecture {
            let model = randomModel(cfg, seed: 4, scalarHead: true, scale: 10)
            let (b, _) = batch()
            let acts = Activations(config: cfg, batch: b.batch, length: b.length)
            let objective = LastTokenObjective()
            checkTensors(
                model, objective: { objective.value(model, b, acts) },
                analytic: {
                    model.forward(b, acts, computeLogits: false)
                    model.zeroGradients()
                    model.backward(b, acts, fromLogits: false, dValues: objective.dValues(b))
                })
        }
    }

    func testLogProbAndEntropyWithTemperature() {
        forEachArchitecture {
            let model = randomModel(cfg, seed: 6, scale: 10)
            let (b, targets) = batch()
            let acts = Activations(config: cfg, batch: b.batch, length: b.length)
            var rng = SeededRandom(seed: 8)
            let cl = targets.map { $0 >= 0 ? rng.normal() : 0 }
            let ce = b.mask.map { $0 == 1 ? rng.normal() : 0 }
            let tau: Float = 0.7
            checkTensors(
                model,
                objective: {
                    model.forward(b, acts)
                    let lp = LogitHeads.targetLogProbs(acts, targets: targets, temperature: tau)
                    let h = LogitHeads.entropies(acts, temperature: tau)
                    var total = 0.0
                    for i in 0..<lp.count {
                        let term: Float = cl[i] * lp[i] + ce[i] * h[i]
                        total += Double(term)
                    }
                    return total
                },
                analytic: {
                    model.forward(b, acts)
                    LogitHeads.logitGradient(acts, targets: targets, temperature: tau, dLogProb: cl, dEntropy: ce)
                    model.zeroGradients()
                    model.backward(b, acts, fromLogits: true)
                })
        }
    }
}
