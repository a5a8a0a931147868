import Foundation
import XCTest

@testable import GRPO

/// GRPOMath against Fixtures/grpo_reference.json, written by make_grpo_reference.py from TRL's
/// semantics in torch float64 (the loss by micro-batches with gradient accumulation, its
/// gradient by autograd).
final class GRPOMathTests: XCTestCase {
    struct Reference: Decodable {
        struct AdvantageCase: Decodable {
            var kind: String, scale: String
            var advantages: [Double], std: [Double]
            var frac_zero_std: Double
        }
        struct LossCase: Decodable {
            var loss: String, beta: Double, total: Double, gradient: [Double]
            var low_mean: Double, high_mean: Double, region_mean: Double, low_min: Double, high_max: Double, kl: Double
        }
        var group: Int, rewards: [Double], advantage_cases: [AdvantageCase]
        var rows: Int, width: Int, micro_batch: Int, epsilon_low: Float, epsilon_high: Float
        var counts: [Int], logp_old: [Float], logp_new: [Float], logp_ref: [Float], row_advantages: [Double]
        var loss_cases: [LossCase]
    }

    lazy var ref: Reference = {
        let url = Bundle.module.url(forResource: "Fixtures/grpo_reference", withExtension: "json")!
        return try! JSONDecoder().decode(Reference.self, from: Data(contentsOf: url))
    }()

    func testAdvantagesMatchTheReference() {
        for c in ref.advantage_cases {
            let a = GRPOMath.advantages(
                ref.rewards, group: ref.group, kind: GRPOAdvantage(rawValue: c.kind)!, scale: RewardScaling(rawValue: c.scale)!)
            for (x, y) in zip(a.values, c.advantages) { XCTAssertEqual(x, y, accuracy: 1e-12, "\(c.kind) \(c.scale)") }
            for (x, y) in zip(a.std, c.std) { XCTAssertEqual(x, y, accuracy: 1e-12, "\(c.kind) \(c.scale) std") }
            XCTAssertEqual(a.fractionZeroStd, c.frac_zero_std, "\(c.kind) \(c.scale)")
        }
    }

    /// RLOO's advantage is K/(K−1) times the group-centred reward: the mean of the others.
    func testRLOOIsTheRewardMinusTheOthersMean() {
        let r = [1.0, 2, 4, 8]
        let a = GRPOMath.advantages(r, group: 4, kind: .rloo, scale: .none).values
        let others: [Double] = [14.0 / 3, 13.0 / 3, 11.0 / 3, 7.0 / 3]
        XCTAssertEqual(a, zip(r, others).map { $0 - $1 })
    }

    /// The whole batch's loss and gradient, micro-batch by micro-batch, as the trainer sums them.
    func batchLoss(_ loss: GRPOLossType, beta: Float, old: [Float]? = nil) -> (gradient: [Float], stats: GRPOMath.LossStats) {
        let w = ref.width, m = ref.micro_batch
        let weights = GRPOMath.tokenWeights(counts: ref.counts, loss: loss, microBatch: m, maxLength: w)
        var grad: [Float] = [], stats = GRPOMath.LossStats()
        for start in stride(from: 0, to: ref.rows, by: m) {
            let rows = start..<(start + m), range = (start * w)..<((start + m) * w)
            let (g, s) = GRPOMath.surrogate(
                logprobs: Array(ref.logp_new[range]), old: Array((old ?? ref.logp_old)[range]), ref: Array(ref.logp_ref[range]),
                advantages: Array(ref.row_advantages[rows]), counts: Array(ref.counts[rows]), weights: Array(weights[rows]), width: w,
                epsilonLow: ref.epsilon_low, epsilonHigh: ref.epsilon_high, beta: beta)
            grad += g
            stats.merge(s)
        }
        return (grad, stats)
    }

    /// Each loss type, with and without the KL penalty: the loss, every gradient, the clip
    /// ratios and the KL.
    func testLossesAndGradientsMatchTheReference() {
        XCTAssertEqual(ref.loss_cases.count, 8)
        for c in ref.loss_cases {
            let label = "\(c.loss) β=\(c.beta)"
            let (grad, s) = batchLoss(GRPOLossType(rawValue: c.loss)!, beta: Float(c.beta))
            XCTAssertEqual(s.loss, c.total, accuracy: 1e-7 * max(1, abs(c.total)), label)
            XCTAssertEqual(grad.count, c.gradient.count)
            // Float32 gradients of float64 references.
            for (i, (x, y)) in zip(grad, c.gradient).enumerated() { XCTAssertEqual(Double(x), y, accuracy: 1e-6 + 1e-5 * abs(y), "\(label) [\(i)]") }
            let metrics = Dictionary(uniqueKeysWithValues: s.metrics(withKL: true))
            XCTAssertEqual(metrics["clip_ratio/low_mean"]!, c.low_mean, accuracy: 1e-12, label)
            XCTAssertEqual(metrics["clip_ratio/high_mean"]!, c.high_mean, accuracy: 1e-12, label)
            XCTAssertEqual(metrics["clip_ratio/region_mean"]!, c.region_mean, accuracy: 1e-12, label)
            XCTAssertEqual(metrics["clip_ratio/low_min"]!, c.low_min, accuracy: 1e-12, label)
            XCTAssertEqual(metrics["clip_ratio/high_max"]!, c.high_max, accuracy: 1e-12, label)
            if c.beta != 0 { XCTAssertEqual(metrics["kl"]!, c.kl, accuracy: 1e-6, label) }
            XCTAssertEqual(metrics["policy_loss"], s.loss)
        }
        // The fixture exercises both clips and leaves two completions out.
        XCTAssertGreaterThan(ref.loss_cases[0].low_mean, 0)
        XCTAssertGreaterThan(ref.loss_cases[0].high_mean, 0)
        XCTAssertEqual(ref.counts.filter { $0 == 0 }.count, 2)
    }

    /// With the old log-probabilities equal to the new (μ = 1, or the first of μ steps), every
    /// ratio is exactly 1: nothing is clipped and the gradient is −A times the token's weight.
    func testFirstRatioIsExactlyOne() {
        for loss in GRPOLossType.allCases {
            let (grad, s) = batchLoss(loss, beta: 0, old: ref.logp_new)
            XCTAssertEqual(s.ratio, Double(s.tokens), "every ratio is 1.0 exactly")
            XCTAssertEqual(s.lowClipped + s.highClipped, 0)
            let weights = GRPOMath.tokenWeights(counts: ref.counts, loss: loss, microBatch: ref.micro_batch, maxLength: ref.width)
            for i in 0..<ref.rows {
                for t in 0..<ref.width {
                    let expected = t < ref.counts[i] ? Float(-ref.row_advantages[i] * weights[i]) : 0
                    XCTAssertEqual(grad[i * ref.width + t], expected, "\(loss) [\(i), \(t)]")
                }
            }
        }
    }

    /// The four aggregation rules on a small case worked by hand.
    func testTokenWeights() {
        let counts = [2, 4, 0, 6]
        XCTAssertEqual(GRPOMath.tokenWeights(counts: counts, loss: .grpo, microBatch: 2, maxLength: 8), [1.0 / 8, 1.0 / 16, 1.0 / 4, 1.0 / 24])
        XCTAssertEqual(GRPOMath.tokenWeights(counts: counts, loss: .bnpo, microBatch: 2, maxLength: 8), [1.0 / 12, 1.0 / 12, 1.0 / 12, 1.0 / 12])
        XCTAssertEqual(GRPOMath.tokenWeights(counts: counts, loss: .bnpo, microBatch: 4, maxLength: 8), [1.0 / 12, 1.0 / 12, 1.0 / 12, 1.0 / 12])
        XCTAssertEqual(
            GRPOMath.tokenWeights(counts: [2, 4, 0, 10], loss: .bnpo, microBatch: 2, maxLength: 8), [1.0 / 12, 1.0 / 12, 1.0 / 20, 1.0 / 20])
        XCTAssertEqual(GRPOMath.tokenWeights(counts: counts, loss: .drGRPO, microBatch: 2, maxLength: 8), [Double](repeating: 1.0 / 32, count: 4))
        XCTAssertEqual(GRPOMath.tokenWeights(counts: counts, loss: .dapo, microBatch: 1, maxLength: 8), [Double](repeating: 1.0 / 12, count: 4))
    }
}
