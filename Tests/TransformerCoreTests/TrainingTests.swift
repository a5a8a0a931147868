import XCTest
@testable import TransformerCore

final class TrainingTests: EveryPathTestCase {
    func testSchedules() {
        let lin = LearningRateSchedule(kind: .linear, peak: 1, warmupSteps: 10, totalSteps: 110, minimum: 0)
        XCTAssertEqual(lin.rate(at: 0), 0.1, accuracy: 1e-6)     // warmup: (step+1)/warmup
        XCTAssertEqual(lin.rate(at: 9), 1.0, accuracy: 1e-6)
        XCTAssertEqual(lin.rate(at: 60), 0.5, accuracy: 1e-6)    // halfway through decay
        XCTAssertEqual(lin.rate(at: 110), 0.0, accuracy: 1e-6)
        XCTAssertEqual(lin.rate(at: 500), 0.0, accuracy: 1e-6)   // clamped after the end
        let cos = LearningRateSchedule(kind: .cosine, peak: 2, totalSteps: 100, minimum: 0.2)
        XCTAssertEqual(cos.rate(at: 0), 2, accuracy: 1e-6)
        XCTAssertEqual(cos.rate(at: 50), 1.1, accuracy: 1e-5)    // midpoint: (peak + min)/2
        XCTAssertEqual(cos.rate(at: 100), 0.2, accuracy: 1e-6)
        XCTAssertEqual(LearningRateSchedule(kind: .constant, peak: 3, totalSteps: 10).rate(at: 7), 3)
    }

    func testGradientClipping() {
        forEachPath {
            let g = FloatBuffer([3, 4] + [Float](repeating: 0, count: 30))
            XCTAssertEqual(clipGradientNorm(g, maxNorm: 10), 5, accuracy: 1e-6)   // below the bound: unchanged
            XCTAssertEqual(g[0], 3)
            XCTAssertEqual(clipGradientNorm(g, maxNorm: 1), 5, accuracy: 1e-6)
            XCTAssertEqual((g[0] * g[0] + g[1] * g[1]).squareRoot(), 1, accuracy: 1e-5)
            XCTAssertEqual(g[0] / g[1], 0.75, accuracy: 1e-6)
        }
    }

    func testWeightDecaySkipsBiasesAndLayerNorm() {
        forEachPath {
            let cfg = ModelConfig(nLayer: 1, nHead: 1, nEmbd: 16, nCtx: 4, vocabSize: 8)
            let model = randomModel(cfg, seed: 1)
            for name in ["h.0.ln_1.weight", "h.0.attn.c_attn.bias"] { let t = model.tensor(name); for i in 0..<t.count { t[i] = 1 } }
            let before = model.parameters.array
            model.zeroGradients()
            let opt = AdamW(layout: model.layout, config: AdamWConfig(learningRate: 0.1, weightDecay: 0.5))
            opt.update(params: model.parameters, grads: model.gradients, lr: 0.1)
            // zero gradients: only decay moves parameters, and only matrices
            XCTAssertEqual(Array(model.tensor("h.0.ln_1.weight")), [Float](repeating: 1, count: 16))
            XCTAssertEqual(Array(model.tensor("h.0.attn.c_attn.bias")), [Float](repeating: 1, count: 48))
            let slot = model.layout["h.0.mlp.c_fc.weight"]!
            XCTAssertEqual(model.tensor("h.0.mlp.c_fc.weight")[3], before[slot.offset + 3] * (1 - 0.05), accuracy: 1e-7)
        }
    }

    func testTrainingReducesLossOnAFixedBatch() {
        forEachPath {
            let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 32, nCtx: 16, vocabSize: 29)
            let model = randomModel(cfg, seed: 2)
            var rng = SeededRandom(seed: 3)
            let tokens = randomTokens(4 * 16, vocab: cfg.vocabSize, rng: &rng)
            let b = TokenBatch(tokens: tokens, batch: 4, length: 16)
            let targets = (0..<tokens.count).map { $0 % 16 == 15 ? Int32(-1) : tokens[$0 + 1] }
            let acts = Activations(config: cfg, batch: 4, length: 16)
            let opt = AdamW(layout: model.layout, config: AdamWConfig(learningRate: 3e-3))
            var first: Float = 0, last: Float = 0
            for step in 0..<60 {
                model.forward(b, acts)
                let loss = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
                if step == 0 { first = loss }
                last = loss
                model.zeroGradients()
                model.backward(b, acts, fromLogits: true)
                clipGradientNorm(model.gradients, maxNorm: 1)
                opt.update(params: model.parameters, grads: model.gradients, lr: 3e-3)
            }
            XCTAssertEqual(Double(first), log(29.0), accuracy: 0.2)   // near uniform at init
            XCTAssertLessThan(last, first * 0.5, "memorising one batch should halve the loss")
        }
    }

    func testRandomIsSeededAndNormal() {
        var a = SeededRandom(seed: 9), b = SeededRandom(seed: 9), c = SeededRandom(seed: 10)
        let xs = (0..<5).map { _ in a.next() }
        XCTAssertEqual(xs, (0..<5).map { _ in b.next() })
        XCTAssertNotEqual(xs, (0..<5).map { _ in c.next() })
        var r = SeededRandom(seed: 1)
        let n = 50000
        let s = (0..<n).map { _ in Double(r.normal()) }
        let mean = s.reduce(0, +) / Double(n)
        let variance = s.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n)
        XCTAssertEqual(mean, 0, accuracy: 0.02)
        XCTAssertEqual(variance, 1, accuracy: 0.03)
    }

    func testGPT2InitialisationStatistics() {
        let cfg = ModelConfig(nLayer: 4, nHead: 2, nEmbd: 64, nCtx: 32, vocabSize: 300)
        let model = TransformerModel(config: cfg, scalarHead: true)
        model.initialize(seed: 1)
        func std(_ name: String) -> Double {
            let t = Array(model.tensor(name)).map(Double.init)
            let m = t.reduce(0, +) / Double(t.count)
            return (t.reduce(0) { $0 + ($1 - m) * ($1 - m) } / Double(t.count)).squareRoot()
        }
        XCTAssertEqual(std("wte.weight"), 0.02, accuracy: 0.001)
        XCTAssertEqual(std("h.0.mlp.c_fc.weight"), 0.02, accuracy: 0.001)
        XCTAssertEqual(std("h.1.mlp.c_proj.weight"), 0.02 / (8.0).squareRoot(), accuracy: 0.0005)
        XCTAssertEqual(std("score.weight"), 1 / 65.0.squareRoot(), accuracy: 0.04)
        XCTAssertEqual(Array(model.tensor("h.2.ln_2.weight")), [Float](repeating: 1, count: 64))
        XCTAssertEqual(Array(model.tensor("h.2.attn.c_attn.bias")), [Float](repeating: 0, count: 192))
    }
}
