import Foundation
import TransformerCore
import XCTest

@testable import SFT

/// SFT's loss, token accuracy and entropy: against an independent torch reference (written from
/// TRL's definitions, `Fixtures/make_sft_reference.py`), and on a model: only the completion's
/// tokens carry loss, and the gradient the trainer accumulates is the loss's (finite differences).
final class SFTLossTests: XCTestCase {
    struct Reference: Decodable {
        let batch: Int, length: Int, vocab: Int
        let logits: [Double], targets: [Int32], grad: [Double]
        let tokens: Int, loss: Double, mean_token_accuracy: Double, entropy: Double
    }

    func testStatisticsMatchTheTorchReference() throws {
        let url = Bundle.module.url(forResource: "Fixtures/sft_reference", withExtension: "json")!
        let r = try JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
        let cfg = ModelConfig(nLayer: 1, nHead: 1, nEmbd: 8, nCtx: r.length, vocabSize: r.vocab)
        let acts = Activations(config: cfg, batch: r.batch, length: r.length)
        for (i, x) in r.logits.enumerated() { acts.logits.pointer[i] = Float(x) }
        let s = LogitHeads.crossEntropyStatistics(acts, targets: r.targets, lossWeight: 1 / Float(r.tokens))
        XCTAssertEqual(s.tokens, r.tokens)
        XCTAssertEqual(s.loss, r.loss, accuracy: 1e-5)
        XCTAssertEqual(s.meanTokenAccuracy, r.mean_token_accuracy, accuracy: 1e-12, "ties count for the first of the maxima only")
        XCTAssertEqual(s.entropy, r.entropy, accuracy: 1e-5)
        for (i, g) in r.grad.enumerated() { XCTAssertEqual(Double(acts.dlogits.pointer[i]), g, accuracy: 1e-6, "dlogits[\(i)]") }
        // Without a loss weight the gradient is left alone and the figures are the same.
        acts.dlogits.pointer[0] = 42
        XCTAssertEqual(LogitHeads.crossEntropyStatistics(acts, targets: r.targets, lossWeight: nil), s)
        XCTAssertEqual(acts.dlogits.pointer[0], 42)
        // The same mean as the pretraining loss on the same targets.
        XCTAssertEqual(Double(LogitHeads.crossEntropy(acts, targets: r.targets, writeGradient: false)), s.loss, accuracy: 1e-5)
    }

    /// A tiny random model and three examples of different prompt and completion lengths.
    func setUpModel() -> (TransformerModel, [SFTExample]) {
        let model = TransformerModel(config: ModelConfig(nLayer: 1, nHead: 2, nEmbd: 16, nCtx: 32, vocabSize: 40))
        model.initialize(seed: 3)
        func ex(_ id: Int64, prompt: Int, completion: Int) -> SFTExample {
            let ids = (0..<(prompt + completion)).map { Int32((Int($0) * 7 + Int(id) * 3) % 39 + 1) }
            return SFTExample(
                demonstrationId: id, promptId: id, ids: ids,
                lossMask: [Bool](repeating: false, count: prompt) + [Bool](repeating: true, count: completion))
        }
        return (model, [ex(1, prompt: 5, completion: 4), ex(2, prompt: 3, completion: 7), ex(3, prompt: 9, completion: 2)])
    }

    func testOnlyCompletionTokensCarryLoss() throws {
        let (model, examples) = setUpModel()
        let (tb, targets) = SFTTrainer.layout(examples, pad: 0, nCtx: 32)
        XCTAssertEqual(tb.length, 16, "the longest (11) rounded up to a multiple of 8")
        // Targets: the next token where it is a completion token, else −1.
        for (r, ex) in examples.enumerated() {
            for j in 0..<tb.length {
                let expected: Int32 = j + 1 < ex.ids.count && ex.lossMask[j + 1] ? ex.ids[j + 1] : -1
                XCTAssertEqual(targets[r * tb.length + j], expected, "row \(r) position \(j)")
            }
        }
        XCTAssertEqual(targets.filter { $0 >= 0 }.count, 4 + 7 + 2)
        // The loss is the mean −log p over exactly those positions, computed independently.
        let acts = Activations(config: model.config, batch: tb.batch, length: tb.length)
        model.forward(tb, acts)
        let lp = LogitHeads.targetLogProbs(acts, targets: targets)
        let mean = -zip(lp, targets).filter { $0.1 >= 0 }.reduce(0.0) { $0 + Double($1.0) } / 13
        let trainer = SFTTrainer(model: model, rows: 8, pad: 0)
        let (stats, computed) = trainer.accumulateGradients(examples)
        XCTAssertEqual(stats.loss, mean, accuracy: 1e-5)
        XCTAssertEqual(stats.tokens, 13)
        XCTAssertEqual(computed, 3 * 16)
        // Changing a prompt token changes the conditioning but a prompt token is never a target:
        // the completion-only loss of an example whose completion is empty is no loss at all.
        let promptOnly = SFTExample(demonstrationId: 9, promptId: 9, ids: [1, 2, 3], lossMask: [false, false, false])
        XCTAssertEqual(promptOnly.lossTokens, 0)
        XCTAssertEqual(trainer.evaluate([promptOnly]).tokens, 0)
        // The gradient rows of positions without a target are zero.
        _ = LogitHeads.crossEntropyStatistics(acts, targets: targets, lossWeight: 1 / 13)
        let v = model.config.vocabSize
        for i in 0..<(tb.batch * tb.length) where targets[i] < 0 {
            XCTAssertTrue((0..<v).allSatisfy { acts.dlogits.pointer[i * v + $0] == 0 }, "position \(i)")
        }
    }

    func testGradientIsTheMaskedLossGradient() throws {
        let (model, examples) = setUpModel()
        // Two sequences per pass: the step's gradient accumulates over two passes.
        let trainer = SFTTrainer(model: model, rows: 2, pad: 0)
        _ = trainer.accumulateGradients(examples)
        let grads = model.gradients.array, n = grads.count
        let evaluate = SFTTrainer(model: model, rows: 8, pad: 0)
        func loss() -> Double { evaluate.evaluate(examples).loss }
        var rng = SeededRandom(seed: 11)
        // The largest gradients, and a few random ones.
        let largest = (0..<n).sorted { abs(grads[$0]) > abs(grads[$1]) }.prefix(6)
        for i in Array(largest) + (0..<6).map({ _ in rng.int(below: n) }) {
            let p = model.parameters.pointer + i
            let x = p.pointee, h: Float = 1e-2
            p.pointee = x + h
            let up = loss()
            p.pointee = x - h
            let down = loss()
            p.pointee = x
            let fd = (up - down) / Double(2 * h)
            XCTAssertEqual(Double(grads[i]), fd, accuracy: 2e-3 + 2e-2 * abs(fd), "parameter \(i)")
        }
    }
}
