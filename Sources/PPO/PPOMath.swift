import Foundation

/// The arithmetic of PPO on flat, masked per-token arrays: rewards, GAE, whitening, the clipped
/// losses and their gradients, and the adaptive KL controller. Free of models so that every
/// formula can be checked against an independent reference (Tests/PPOTests/Fixtures).
///
/// Arrays are (B, R) row-major over response positions; `lengths[b]` real tokens per row (the
/// EOS included), the rest masked out of everything.
public enum PPOMath {
    /// r_t = −β·(logp_t − logp_ref_t), with the score added at the last real token.
    public static func tokenRewards(logprobs: [Float], refLogprobs: [Float], scores: [Float], lengths: [Int], width: Int, beta: Float) -> [Float] {
        var r = [Float](repeating: 0, count: logprobs.count)
        for b in 0..<lengths.count {
            for t in 0..<lengths[b] { r[b * width + t] = -beta * (logprobs[b * width + t] - refLogprobs[b * width + t]) }
            if lengths[b] > 0 { r[b * width + lengths[b] - 1] += scores[b] }
        }
        return r
    }

    /// Generalised advantage estimation, backwards over each row's real tokens; returns
    /// (advantages, returns = advantages + values), both zero where masked.
    public static func gae(rewards: [Float], values: [Float], lengths: [Int], width: Int, gamma: Float, lambda: Float) -> ([Float], [Float]) {
        var adv = [Float](repeating: 0, count: rewards.count), ret = adv
        for b in 0..<lengths.count {
            var last: Float = 0
            for t in stride(from: lengths[b] - 1, through: 0, by: -1) {
                let i = b * width + t
                let next: Float = t + 1 < lengths[b] ? values[i + 1] : 0
                let delta = rewards[i] + gamma * next - values[i]
                last = delta + gamma * lambda * last
                adv[i] = last
                ret[i] = last + values[i]
            }
        }
        return (adv, ret)
    }

    /// Mean and (unbiased) variance over the real tokens.
    public static func maskedMeanVariance(_ x: [Float], lengths: [Int], width: Int) -> (Double, Double) {
        var sum = 0.0, n = 0
        for b in 0..<lengths.count { for t in 0..<lengths[b] { sum += Double(x[b * width + t]); n += 1 } }
        guard n > 0 else { return (0, 0) }
        let mean = sum / Double(n)
        var ss = 0.0
        for b in 0..<lengths.count { for t in 0..<lengths[b] { let d = Double(x[b * width + t]) - mean; ss += d * d } }
        return (mean, n > 1 ? ss / Double(n - 1) : 0)
    }

    /// (x − mean)/√(var + 1e-8) over the real tokens (mean added back unless `shiftMean`); masked
    /// positions stay 0.
    public static func whiten(_ x: [Float], lengths: [Int], width: Int, shiftMean: Bool = true) -> [Float] {
        let (mean, variance) = maskedMeanVariance(x, lengths: lengths, width: width)
        let inv = 1 / (variance + 1e-8).squareRoot()
        var out = [Float](repeating: 0, count: x.count)
        for b in 0..<lengths.count {
            for t in 0..<lengths[b] {
                let i = b * width + t
                var w = (Double(x[i]) - mean) * inv
                if !shiftMean { w += mean }
                out[i] = Float(w)
            }
        }
        return out
    }

    /// The clipped policy loss over real tokens (masked mean of max(−A·ρ, −A·clip(ρ, 1±ε))),
    /// its gradient with respect to each new log-probability, and the statistics PPO reports.
    public struct PolicyLoss: Equatable, Sendable {
        public var loss: Double
        /// ∂loss/∂logp_new per position (0 where masked or clipped).
        public var gradient: [Float]
        /// Fraction of real tokens where the clipped term was the larger.
        public var clipFraction: Double
        /// Mean of (ρ − 1) − log ρ (the k3 estimator of KL(old‖new)).
        public var approxKL: Double
        public var ratioMean: Double
        public var ratioMax: Double
    }

    public static func policyLoss(newLogprobs: [Float], oldLogprobs: [Float], advantages: [Float], mask: [Bool], clip eps: Float) -> PolicyLoss {
        let n = mask.reduce(0) { $0 + ($1 ? 1 : 0) }
        var out = PolicyLoss(loss: 0, gradient: [Float](repeating: 0, count: mask.count), clipFraction: 0, approxKL: 0, ratioMean: 0, ratioMax: 0)
        guard n > 0 else { return out }
        var loss = 0.0, clipped = 0, kl = 0.0, rsum = 0.0, rmax = -Double.infinity
        for i in 0..<mask.count where mask[i] {
            let logRatio = Double(newLogprobs[i]) - Double(oldLogprobs[i])
            let ratio = exp(logRatio)
            let a = Double(advantages[i])
            let unclipped = -a * ratio
            let clippedTerm = -a * min(max(ratio, 1 - Double(eps)), 1 + Double(eps))
            if clippedTerm > unclipped {
                loss += clippedTerm; clipped += 1
            } else {
                loss += unclipped
                out.gradient[i] = Float(-a * ratio / Double(n))
            }
            kl += (ratio - 1) - logRatio
            rsum += ratio; rmax = max(rmax, ratio)
        }
        out.loss = loss / Double(n)
        out.clipFraction = Double(clipped) / Double(n)
        out.approxKL = kl / Double(n)
        out.ratioMean = rsum / Double(n)
        out.ratioMax = rmax
        return out
    }

    /// The clipped value loss 0.5·masked mean of max((V − R)², (clip(V, V_old ± ε_v) − R)²), its
    /// gradient with respect to each new value, and the fraction of tokens where clipping won.
    public static func valueLoss(newValues: [Float], oldValues: [Float], returns: [Float], mask: [Bool], clip eps: Float) -> (
        loss: Double, gradient: [Float], clipFraction: Double
    ) {
        let n = mask.reduce(0) { $0 + ($1 ? 1 : 0) }
        var grad = [Float](repeating: 0, count: mask.count)
        guard n > 0 else { return (0, grad, 0) }
        var loss = 0.0, clipped = 0
        for i in 0..<mask.count where mask[i] {
            let v = Double(newValues[i]), old = Double(oldValues[i]), r = Double(returns[i])
            let vc = old + min(max(v - old, -Double(eps)), Double(eps))
            let l1 = (v - r) * (v - r), l2 = (vc - r) * (vc - r)
            if l2 > l1 {
                loss += l2; clipped += 1
                // d(vc)/dv is 1 inside the clip range and 0 outside.
                if abs(v - old) < Double(eps) { grad[i] = Float((vc - r) / Double(n)) }
            } else {
                loss += l1
                grad[i] = Float((v - r) / Double(n))
            }
        }
        return (0.5 * loss / Double(n), grad, Double(clipped) / Double(n))
    }

    /// 1 − Var(returns − values)/Var(returns) over real tokens.
    public static func explainedVariance(values: [Float], returns: [Float], lengths: [Int], width: Int) -> Double {
        let diff = zip(returns, values).map { $0 - $1 }
        let (_, vr) = maskedMeanVariance(returns, lengths: lengths, width: width)
        let (_, vd) = maskedMeanVariance(diff, lengths: lengths, width: width)
        return vr > 0 ? 1 - vd / vr : .nan
    }

    /// The adaptive KL controller of Ziegler et al.: e = clip(KL/target − 1, ±0.2),
    /// β ← β·(1 + e·n/horizon), n the number of samples in the batch.
    public static func adaptiveKL(beta: Float, kl: Double, target: Double, samples: Int, horizon: Double) -> Float {
        let e = min(max(kl / target - 1, -0.2), 0.2)
        return Float(Double(beta) * (1 + e * Double(samples) / horizon))
    }
}
