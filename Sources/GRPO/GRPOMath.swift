import Foundation

/// The arithmetic of GRPO and its variants, free of models so that every rule can be checked
/// against an independent reference (Tests/GRPOTests/Fixtures): advantages within groups, the
/// clipped surrogate with the k3 KL penalty, TRL's four ways of summing token losses, and the
/// gradient of the summed loss with respect to each new log-probability.
///
/// Completions are rows of a (N, R) row-major array over response positions, N = prompts × K
/// with each prompt's K completions adjacent; `counts[i]` is how many of row i's positions are
/// in the loss (its length, or 0 for a truncated completion under --mask-truncated).
public enum GRPOMath {
    /// The advantage of each completion and what TRL logs about the rewards' spread.
    public struct Advantages: Equatable, Sendable {
        /// One per completion.
        public var values: [Double]
        /// The standard deviation each completion's advantage was (or, without scaling, would
        /// have been) divided by: its group's, or the batch's under `RewardScaling.batch`.
        public var std: [Double]
        /// The fraction of completions whose `std` is zero (TRL's `frac_reward_zero_std`).
        public var fractionZeroStd: Double
    }

    /// The mean and the unbiased standard deviation (NaN for fewer than two values).
    public static func meanStd(_ x: ArraySlice<Double>) -> (mean: Double, std: Double) {
        let n = Double(x.count)
        let mean = x.reduce(0, +) / n
        guard x.count > 1 else { return (mean, .nan) }
        let ss = x.reduce(0) { $0 + ($1 - mean) * ($1 - mean) }
        return (mean, (ss / (n - 1)).squareRoot())
    }

    /// Advantages of `rewards` in groups of `k`: the reward minus the group's mean (`group`) or
    /// minus the mean of the other k − 1 (`rloo`), then divided by std + 1e-4 unless `scale` is
    /// `none`.
    public static func advantages(_ rewards: [Double], group k: Int, kind: GRPOAdvantage, scale: RewardScaling) -> Advantages {
        precondition(k >= 2 && rewards.count % k == 0, "rewards come in whole groups of at least 2")
        let batchStd = meanStd(rewards[...]).std
        var values = [Double](repeating: 0, count: rewards.count), std = values
        for g in stride(from: 0, to: rewards.count, by: k) {
            let slice = rewards[g..<(g + k)]
            let (mean, groupStd) = meanStd(slice)
            let sum = slice.reduce(0, +)
            for i in g..<(g + k) {
                let r = rewards[i]
                values[i] = kind == .group ? r - mean : r - (sum - r) / Double(k - 1)
                std[i] = scale == .batch ? batchStd : groupStd
                if scale != .none { values[i] /= std[i] + 1e-4 }
            }
        }
        // torch.isclose(std, 0): |std| ≤ 1e-8.
        let zero = std.filter { abs($0) <= 1e-8 }.count
        return Advantages(values: values, std: std, fractionZeroStd: Double(zero) / Double(max(1, rewards.count)))
    }

    /// The weight of each of row i's tokens in the batch's loss, so that the loss is
    /// Σ_i Σ_t weight[i]·ℓ_it, as TRL's `_compute_loss` sums it over one optimiser step whose
    /// batch is split into micro-batches of `microBatch` rows (gradient accumulation):
    /// - grpo: 1/(N·max(1, counts[i])), each completion's token mean averaged over completions;
    /// - bnpo: 1/(A·max(1, tokens of i's micro-batch)), A = N/microBatch micro-batches;
    /// - dr_grpo: 1/(N·maxLength), a constant;
    /// - dapo: 1/max(1, tokens of the whole batch).
    public static func tokenWeights(counts: [Int], loss: GRPOLossType, microBatch: Int, maxLength: Int) -> [Double] {
        let n = counts.count
        precondition(microBatch >= 1 && n % microBatch == 0, "the micro-batch divides the batch")
        switch loss {
        case .grpo:
            return counts.map { 1 / (Double(n) * Double(max(1, $0))) }
        case .bnpo:
            let passes = Double(n / microBatch)
            return counts.indices.map { i in
                let start = i / microBatch * microBatch
                return 1 / (passes * Double(max(1, counts[start..<(start + microBatch)].reduce(0, +))))
            }
        case .drGRPO:
            return counts.map { _ in 1 / (Double(n) * Double(maxLength)) }
        case .dapo:
            let total = max(1, counts.reduce(0, +))
            return counts.map { _ in 1 / Double(total) }
        }
    }

    /// What the loss of some rows adds up: sums and counts that merge across micro-batches and
    /// optimiser steps into TRL's GRPO metrics.
    public struct LossStats: Equatable, Sendable {
        /// Σ weight·ℓ: the loss of the rows seen (the batch's loss once every row is in).
        public var loss = 0.0
        /// Tokens in the loss, and the sums over them of the k3 KL, the entropy, the ratio, and
        /// the low-, high- and either-side-clipped indicators.
        public var tokens = 0
        public var kl = 0.0, entropy = 0.0, ratio = 0.0
        public var lowClipped = 0, highClipped = 0
        /// The smallest per-completion fraction of low-clipped tokens and the largest of
        /// high-clipped ones, over completions with tokens in the loss (TRL's
        /// `clip_ratio/low_min` and `clip_ratio/high_max`); nil before any.
        public var lowMin: Double?, highMax: Double?

        public init() {}

        /// Adds `other`'s sums and counts.
        public mutating func merge(_ other: LossStats) {
            loss += other.loss; tokens += other.tokens
            kl += other.kl; entropy += other.entropy; ratio += other.ratio
            lowClipped += other.lowClipped; highClipped += other.highClipped
            if let m = other.lowMin { lowMin = min(lowMin ?? m, m) }
            if let m = other.highMax { highMax = max(highMax ?? m, m) }
        }

        /// The metrics, under TRL's names; `kl` only when `withKL` (TRL logs it only when β ≠ 0).
        public func metrics(withKL: Bool) -> [(String, Double)] {
            let n = Double(max(1, tokens))
            var out: [(String, Double)] = [
                ("policy_loss", loss), ("entropy", entropy / n),
                ("clip_ratio/low_mean", Double(lowClipped) / n), ("clip_ratio/low_min", lowMin ?? .nan),
                ("clip_ratio/high_mean", Double(highClipped) / n), ("clip_ratio/high_max", highMax ?? .nan),
                ("clip_ratio/region_mean", Double(lowClipped + highClipped) / n),
            ]
            if withKL { out.insert(("kl", kl / n), at: 1) }
            return out
        }
    }

    /// The clipped surrogate with the k3 KL penalty on some rows, and its gradient.
    ///
    /// For each token in the loss, with ρ = exp(logp − logp_old) and A the row's advantage:
    /// ℓ = −min(ρ·A, clip(ρ, 1 − ε_low, 1 + ε_high)·A) + β·(exp(r − logp) − (r − logp) − 1),
    /// r the reference's log-probability. ∂ℓ/∂logp = −ρ·A where the unclipped term is the
    /// minimum (0 where the clipped one is smaller), plus β·(1 − exp(r − logp)).
    ///
    /// Arrays are (rows, width) row-major over response positions; `ref` is read only when
    /// β ≠ 0 and `entropy` may be empty. Returns ∂(Σ weight·ℓ)/∂logp per position and the stats.
    public static func surrogate(
        logprobs: [Float], old: [Float], ref: [Float]?, entropy: [Float] = [], advantages: [Double], counts: [Int],
        weights: [Double], width: Int, epsilonLow: Float, epsilonHigh: Float, beta: Float
    ) -> (gradient: [Float], stats: LossStats) {
        var grad = [Float](repeating: 0, count: logprobs.count)
        var s = LossStats()
        let lo = 1 - Double(epsilonLow), hi = 1 + Double(epsilonHigh), b = Double(beta)
        for i in counts.indices where counts[i] > 0 {
            let a = advantages[i], w = weights[i]
            var low = 0, high = 0
            for t in 0..<counts[i] {
                let j = i * width + t
                let logp = Double(logprobs[j])
                let ratio = exp(logp - Double(old[j]))
                let clipped = min(max(ratio, lo), hi)
                let unclippedTerm = ratio * a, clippedTerm = clipped * a
                var l = -min(unclippedTerm, clippedTerm)
                var g = unclippedTerm <= clippedTerm ? -ratio * a : 0
                if b != 0, let ref {
                    let d = Double(ref[j]) - logp
                    let kl = exp(d) - d - 1
                    l += b * kl
                    g += b * (1 - exp(d))
                    s.kl += kl
                }
                s.loss += w * l
                grad[j] = Float(w * g)
                s.ratio += ratio
                if !entropy.isEmpty { s.entropy += Double(entropy[j]) }
                if ratio < lo && a < 0 { low += 1 }
                if ratio > hi && a > 0 { high += 1 }
            }
            s.tokens += counts[i]; s.lowClipped += low; s.highClipped += high
            let n = Double(counts[i])
            s.lowMin = min(s.lowMin ?? .infinity, Double(low) / n)
            s.highMax = max(s.highMax ?? -.infinity, Double(high) / n)
        }
        return (grad, s)
    }
}
