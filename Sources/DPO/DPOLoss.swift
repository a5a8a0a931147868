import Foundation

/// The preference losses of `rlhf dpo`, as functions of h = (log π(y_w) − log π_ref(y_w)) −
/// (log π(y_l) − log π_ref(y_l)), the log-probabilities summed over the completion's tokens:
/// - sigmoid (DPO, Rafailov et al. 2023), with label smoothing ε (conservative DPO):
///   −(1−ε)·log σ(β·h) − ε·log σ(−β·h)
/// - ipo (Azar et al. 2023): (h − 1/(2β))²
/// - hinge (SLiC, Zhao et al. 2023): max(0, 1 − β·h)
public enum DPOLossKind: String, Codable, CaseIterable, Sendable {
    case sigmoid, ipo, hinge
}

/// The settings the loss needs.
public struct DPOObjective: Codable, Equatable, Sendable {
    public var beta: Double = 0.1
    public var kind: DPOLossKind = .sigmoid
    public var labelSmoothing: Double = 0

    public init(beta: Double = 0.1, kind: DPOLossKind = .sigmoid, labelSmoothing: Double = 0) {
        self.beta = beta; self.kind = kind; self.labelSmoothing = labelSmoothing
    }

    /// Why these settings cannot train, or nil.
    public var validationError: String? {
        if !(beta > 0) || !beta.isFinite { return "--beta must be a positive number" }
        if !(labelSmoothing >= 0 && labelSmoothing < 0.5) { return "--label-smoothing must be in [0, 0.5)" }
        if labelSmoothing > 0 && kind != .sigmoid { return "--label-smoothing applies to --loss sigmoid only" }
        return nil
    }

    /// −log σ(x), without overflow.
    static func negLogSigmoid(_ x: Double) -> Double { max(-x, 0) + log1p(exp(-abs(x))) }
    /// σ(x), without overflow.
    static func sigmoid(_ x: Double) -> Double { x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)) }

    /// The loss of one pair and its derivative with respect to h.
    public func pair(_ h: Double) -> (loss: Double, dh: Double) {
        switch kind {
        case .sigmoid:
            let z = beta * h, e = labelSmoothing
            let loss = (1 - e) * Self.negLogSigmoid(z) + e * Self.negLogSigmoid(-z)
            // d/dz −log σ(z) = −σ(−z); d/dz −log σ(−z) = σ(z)
            return (loss, beta * (-(1 - e) * Self.sigmoid(-z) + e * Self.sigmoid(z)))
        case .ipo:
            let d = h - 1 / (2 * beta)
            return (d * d, 2 * d)
        case .hinge:
            let m = 1 - beta * h
            return m > 0 ? (m, -beta) : (0, 0)
        }
    }
}

/// The figures TRL logs for DPO, averaged with the loss's weights.
public struct DPOStats: Equatable, Sendable {
    public var loss = 0.0
    public var rewardsChosen = 0.0, rewardsRejected = 0.0, accuracy = 0.0
    public var logpsChosen = 0.0, logpsRejected = 0.0
    /// The weight these figures carry (rankings, counted once each).
    public var weight = 0.0
    public var margin: Double { rewardsChosen - rewardsRejected }

    public init() {}

    /// The figures in TRL's names, with `prefix` ("" for training steps, "eval_" for validation).
    public func metrics(prefix: String = "") -> [(String, Double)] {
        [
            ("\(prefix)loss", loss), ("\(prefix)rewards/chosen", rewardsChosen), ("\(prefix)rewards/rejected", rewardsRejected),
            ("\(prefix)rewards/accuracies", accuracy), ("\(prefix)rewards/margins", margin),
            ("\(prefix)logps/chosen", logpsChosen), ("\(prefix)logps/rejected", logpsRejected),
        ]
    }

    /// Merges `other` into these figures as a weighted mean.
    public mutating func merge(_ other: DPOStats) {
        let w = weight + other.weight
        guard w > 0 else { return }
        func mix(_ a: Double, _ b: Double) -> Double { (a * weight + b * other.weight) / w }
        loss = mix(loss, other.loss)
        rewardsChosen = mix(rewardsChosen, other.rewardsChosen); rewardsRejected = mix(rewardsRejected, other.rewardsRejected)
        accuracy = mix(accuracy, other.accuracy)
        logpsChosen = mix(logpsChosen, other.logpsChosen); logpsRejected = mix(logpsRejected, other.logpsRejected)
        weight = w
    }
}

extension DPOObjective {
    /// One ranking's loss: the mean over its pairs, so that every ranking counts the same however
    /// many completions it ranked (as train-reward weighs them). `policy` and `reference` are the
    /// summed log-probabilities of the ranking's completions; pairs index into them. Returns the
    /// ranking's figures (weight 1) and the gradient of `weight`·loss with respect to each policy
    /// log-probability.
    public func ranking(
        policy: [Double], reference: [Double], pairs: [(chosen: Int, rejected: Int)],
        weight: Double = 1
    ) -> (stats: DPOStats, gradient: [Double]) {
        var grad = [Double](repeating: 0, count: policy.count)
        var s = DPOStats()
        guard !pairs.isEmpty else { return (s, grad) }
        let share = 1 / Double(pairs.count)
        for p in pairs {
            let rc = policy[p.chosen] - reference[p.chosen], rr = policy[p.rejected] - reference[p.rejected]
            let (loss, dh) = pair(rc - rr)
            grad[p.chosen] += weight * share * dh
            grad[p.rejected] -= weight * share * dh
            s.loss += share * loss
            s.rewardsChosen += share * beta * rc
            s.rewardsRejected += share * beta * rr
            s.accuracy += share * (rc > rr ? 1 : 0)
            s.logpsChosen += share * policy[p.chosen]
            s.logpsRejected += share * policy[p.rejected]
        }
        s.weight = 1
        return (s, grad)
    }
}
