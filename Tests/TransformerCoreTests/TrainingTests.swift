import XCTest

@testable import TransformerCore

final class TrainingTests: EveryPathTestCase {
    func testSchedules() {
        let lin = LearningRateSchedule(kind: .linear, peak: 1, warmupSteps: 10, totalSteps: 110, minimum: 0)
        XCTAssertEqual(lin.rate(at: 0), 0.1, accuracy: 1e-6) // warmup: (step+1)/warmup
        XCTAssertEqual(lin.rate(at: 9), 1.0, accuracy: 1e-6)
        XCTAssertEqual(lin.rate(at: 60), 0.5, accuracy: 1e-6) // halfway through decay
        XCTAssertEqual(lin.rate(at: 110), 0.0, accuracy: 1e-6)
        XCTAssertEqual(lin.rate(at: 500), 0.0, accuracy: 1e-6) // clamped after the end
        let cos = LearningRateSchedule(kind: .cosine, peak: 2, totalSteps: 100, minimum: 0.2)
        XCTAssertEqual(cos.rate(at: 0), 2, accuracy: 1e-6)
        XCTAssertEqual(cos.rate(at: 50), 1.1, accuracy: 1e-5) // midpoint: (peak + min)/2
        XCTAssertEqual(cos.rate(at: 100), 0.2, accuracy: 1e-6)
        XCTAssertEqual(LearningRateSchedule(kind: .constant, peak: 3, totalSteps: 10).rate(at: 7), 3)
    }

    func testGradientClipping() {
        forEachPath {
            let g = FloatBuffer([3, 4] + [Float](repeating: 0, count: 30))
            XCTAssertEqual(clipGradientNorm(g, maxNorm: 10), 5, accuracy: 1e-6) // below the bound: unchanged
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

    /// The update is split between threads by elements, one tensor possibly across threads: every
    /// element of every tensor is updated once, as AdamW's definition gives (computed here in
    /// Double), and the result is the same bits with one thread or several.
    func testAdamWSplitsTensorsBetweenThreadsExactly() {
        forEachPath {
            // a large first tensor (as an embedding is), odd sizes, an empty one, decay on and off
            let sizes = [150_001, 17, 0, 40_003, 33, 96, 70_000]
            var ranges: [(offset: Int, count: Int, decays: Bool)] = []
            var total = 0
            for (i, n) in sizes.enumerated() { ranges.append((total, n, i % 2 == 0)); total += n }
            var rng = SeededRandom(seed: 11)
            let start = (0..<total).map { _ in rng.uniformFloat() - 0.5 }
            let grads = (0..<3).map { _ in FloatBuffer((0..<total).map { _ in rng.uniformFloat() - 0.5 }) }
            let config = AdamWConfig(learningRate: 1e-2, weightDecay: 0.1)
            func run(threads: Int) -> [Float] {
                let saved = Parallel.threadCount
                Parallel.threadCount = threads
                defer { Parallel.threadCount = saved }
                let params = FloatBuffer(start)
                let opt = AdamW(ranges: ranges, count: total, config: config)
                for g in grads { opt.update(params: params, grads: g, lr: 1e-2) }
                return params.array
            }
            let one = run(threads: 1), two = run(threads: 2), three = run(threads: 3)
            func differing(_ x: [Float], _ y: [Float]) -> Int { zip(x, y).filter { $0.bitPattern != $1.bitPattern }.count }
            XCTAssertEqual(differing(one, two), 0, "elements that differ between one thread and two")
            XCTAssertEqual(differing(one, three), 0, "elements that differ between one thread and three")
            // the reference, element by element
            let (b1, b2, eps, lr) = (Double(config.beta1), Double(config.beta2), Double(config.eps), 1e-2)
            var worst = 0.0
            for (offset, count, decays) in ranges {
                for i in offset..<offset + count {
                    var p = Double(start[i]), m = 0.0, v = 0.0
                    for (t, g) in grads.enumerated() {
                        let gi = Double(g[i])
                        m = b1 * m + (1 - b1) * gi
                        v = b2 * v + (1 - b2) * gi * gi
                        let mh = m / (1 - pow(b1, Double(t + 1))), vh = v / (1 - pow(b2, Double(t + 1)))
                        p = p * (decays ? 1 - lr * Double(config.weightDecay) : 1) - lr * mh / (vh.squareRoot() + eps)
                    }
                    worst = max(worst, abs(p - Double(one[i])))
                }
            }
            XCTAssertLessThan(worst, 1e-5)
        }
    }

    func testTrainingReducesLossOnAFixedBatch() {
        forEachPath {
            let (first, last, _) = memoriseOneBatch()
            XCTAssertEqual(Double(first), log(29.0), accuracy: 0.2) // near uniform at init
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
