import Foundation

/// The figures TRL's `SFTTrainer` logs, summed over the positions that carry a target (the
/// completion's tokens): the negative log-likelihood, how often the most likely token is the
/// target, and the entropy of the next-token distribution. Sums, so that micro-batches and
/// evaluation batches merge exactly; the means are what is logged.
public struct TokenStatistics: Equatable, Sendable {
    /// Positions with a target.
    public var tokens = 0
    /// Σ −log p(target).
    public var nllSum = 0.0
    /// Positions whose most likely token is the target (the first of equal maxima, as
    /// `argmax` picks it).
    public var correct = 0
    /// Σ H(p) over the positions with a target.
    public var entropySum = 0.0

    public init() {}

    /// Mean negative log-likelihood per target token (TRL's `loss`); 0 without targets.
    public var loss: Double { tokens > 0 ? nllSum / Double(tokens) : 0 }
    /// TRL's `mean_token_accuracy`.
    public var meanTokenAccuracy: Double { tokens > 0 ? Double(correct) / Double(tokens) : 0 }
    /// TRL's `entropy`: the mean entropy over the target positions.
    public var entropy: Double { tokens > 0 ? entropySum / Double(tokens) : 0 }

    /// Adds `other`'s sums to these.
    public mutating func merge(_ other: TokenStatistics) {
        tokens += other.tokens; nllSum += other.nllSum; correct += other.correct; entropySum += other.entropySum
    }
}

extension LogitHeads {
    /// The cross-entropy of the targets with its statistics (negative targets are ignored: a
    /// prompt's tokens, padding). With `lossWeight` w, also writes `acts.dlogits` = the gradient
    /// of w · Σ −log p(target): w = 1/targets gives the mean that `crossEntropy` differentiates,
    /// and w = 1/(the step's targets) lets several passes of one step add up to its mean.
    /// Positions without a target get a zero gradient row and no softmax.
    public static func crossEntropyStatistics(_ acts: Activations, targets: [Int32], lossWeight: Float?) -> TokenStatistics {
        let n = acts.batch * acts.length, v = acts.config.vocabSize
        precondition(targets.count == n)
        precondition(acts.logitWindow == nil, "token statistics read the logits of every position")
        let logits = acts.logits.pointer, dlogits = acts.dlogits.pointer
        var lp = [Float](repeating: 0, count: n), ent = [Float](repeating: 0, count: n), top = [UInt8](repeating: 0, count: n)
        lp.withUnsafeMutableBufferPointer { lpb in
            ent.withUnsafeMutableBufferPointer { eb in
                top.withUnsafeMutableBufferPointer { tb in
                    let l = lpb.baseAddress!, e = eb.baseAddress!, t = tb.baseAddress!
                    forRows(n, v) { i, probs in
                        let row = logits + i * v
                        let y = Int(targets[i])
                        guard y >= 0 else {
                            if lossWeight != nil { (dlogits + i * v).update(repeating: 0, count: v) }
                            return
                        }
                        let (lse, pz) = softmaxRow(row, v, 1, probs)
                        let h = lse - pz
                        l[i] = row[y] - lse
                        e[i] = h
                        var best = 0
                        for j in 1..<v where row[j] > row[best] { best = j }
                        t[i] = best == y ? 1 : 0
                        if let w = lossWeight {
                            // d(−w·log p(y))/dz_j = w·(p_j − δ_jy), as logitGradient writes it with dLogProb = −w
                            let drow = dlogits + i * v
                            Kernels.active.logitGradientRow(row, probs, drow, v, 1, lse, h, -w, 0)
                            drow[y] -= w
                        }
                    }
                }
            }
        }
        var s = TokenStatistics()
        for i in 0..<n where targets[i] >= 0 {
            s.tokens += 1
            s.nllSum -= Double(lp[i])
            s.entropySum += Double(ent[i])
            s.correct += Int(top[i])
        }
        return s
    }
}
