import DPO
import Foundation
import RunStore
import TransformerCore

/// `rlhf bench --only dpo`: the time of a DPO epoch.
extension BenchCommand {
    /// The dpo rows: the reference pass, the epoch and the validation pass.
    static func reportDPO(_ out: BenchOutput) {
        for (name, secs, count) in benchDPO() {
            out.emit(
                ["what": "dpo", "phase": name, "seconds": round3(secs), "rankings": count],
                text: "dpo      \(name)\(precisionTag)".column(28)
                    + String(format: "%.3f s (%@ rankings/s)", secs, fmt(Double(count) / secs)))
        }
    }

    /// One DPO epoch on config S with random models, over rankings shaped like the quick demo's:
    /// (phase, seconds, rankings) for the reference pass, the epoch and the validation pass.
    static func benchDPO() -> [(String, Double, Int)] {
        let cfg = ModelConfig.preset("S")!
        let policy = TransformerModel(config: cfg), reference = TransformerModel(config: cfg)
        policy.initialize(seed: 1)
        reference.copyParameters(from: policy)
        var rng = SeededRandom(seed: 7)
        func tokens(_ range: ClosedRange<Int>) -> [Int32] {
            (0..<(range.lowerBound + rng.int(below: range.count))).map { _ in Int32(2 + rng.int(below: cfg.vocabSize - 2)) }
        }
        var pairs: [ComparisonGroup.Pair] = []
        for i in 0..<6 { for j in (i + 1)..<6 { pairs.append(.init(chosen: i, rejected: j)) } }
        let examples = (0..<400).map { i in
            PreferenceExample(
                rankingId: Int64(i), promptId: Int64(i), completionIds: (0..<6).map { Int64(6 * i + $0) },
                prompt: tokens(8...24), responses: (0..<6).map { _ in tokens(8...48) }, pairs: pairs)
        }
        let train = Array(examples.prefix(360)), val = Array(examples.suffix(40))
        let trainer = DPOTrainer(policy: policy, objective: DPOObjective(), rows: 16, pad: 1)
        let opt = AdamW(layout: policy.layout, config: AdamWConfig(learningRate: 1e-5, weightDecay: 0))
        var t = Date()
        let ref = trainer.logProbSums(reference, examples)
        let refSeconds = Date().timeIntervalSince(t)
        t = Date()
        for start in stride(from: 0, to: train.count, by: 8) {
            let range = start..<min(start + 8, train.count)
            _ = trainer.accumulateGradients(Array(train[range]), reference: Array(ref[range]))
            clipGradientNorm(policy.gradients, maxNorm: 1)
            opt.update(params: policy.parameters, grads: policy.gradients, lr: 1e-5)
        }
        let epochSeconds = Date().timeIntervalSince(t)
        t = Date()
        _ = trainer.evaluate(val, reference: Array(ref.suffix(40)))
        let valSeconds = Date().timeIntervalSince(t)
        return [
            ("reference pass", refSeconds, examples.count), ("epoch (45 steps)", epochSeconds, train.count),
            ("validation pass", valSeconds, val.count),
        ]
    }
}
