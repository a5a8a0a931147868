import Foundation

/// How the next token is chosen from the logits.
public struct SamplingSettings: Codable, Equatable, Sendable {
    /// Always take the most likely token.
    public var greedy: Bool
    /// Logits are divided by this before softmax (> 0). Reported log-probabilities use it too.
    public var temperature: Float
    /// Keep only the k most likely tokens (nil: all).
    public var topK: Int?
    /// Keep the smallest set of most likely tokens whose probability reaches p (1: all).
    public var topP: Float

    /// Sampling settings; the defaults are plain sampling at temperature 1.
    public init(greedy: Bool = false, temperature: Float = 1, topK: Int? = nil, topP: Float = 1) {
        self.greedy = greedy; self.temperature = temperature; self.topK = topK; self.topP = topP
    }

    /// A message describing the first invalid setting, or nil.
    public func validationError() -> String? {
        if !(temperature > 0) || !temperature.isFinite { return "temperature must be a positive number (got \(temperature))" }
        if let k = topK, k < 1 { return "top-k must be at least 1 (got \(k))" }
        if !(topP > 0 && topP <= 1) { return "top-p must be in (0, 1] (got \(topP))" }
        return nil
    }
}

/// Picks tokens from logit rows. Holds scratch space, so sampling allocates nothing per token
/// (except for top-k/top-p, which sort candidates).
public final class Sampler {
    /// The settings in force.
    public let settings: SamplingSettings
    private let probs: FloatBuffer
    private var order: [Int32]

    /// A sampler for rows of `vocabSize` logits.
    public init(settings: SamplingSettings, vocabSize: Int) {
        precondition(settings.validationError() == nil, settings.validationError() ?? "")
        self.settings = settings
        probs = FloatBuffer(count: vocabSize)
        order = []
    }

    /// Chooses a token from `logits` (length V) and returns it with its log-probability under
    /// softmax(logits/temperature), before any top-k/top-p filtering (the quantity PPO recomputes).
    public func pick(_ logits: UnsafePointer<Float>, _ v: Int, rng: inout SeededRandom) -> (token: Int32, logProb: Float) {
        pick(logits, v, uniform: settings.greedy ? 0 : rng.uniformFloat())
    }

    /// `pick` with its one uniform draw in [0, 1) made by the caller (unused when greedy), so that
    /// rows drawn in order can be picked on several threads, each with a sampler of its own.
    func pick(_ logits: UnsafePointer<Float>, _ v: Int, uniform: Float) -> (token: Int32, logProb: Float) {
        let invT = 1 / settings.temperature
        let (lse, _) = LogitHeads.softmaxRow(logits, v, invT, probs.pointer)
        let p = probs.pointer
        var chosen = 0
        if settings.greedy {
            var best = logits[0]
            for j in 1..<v where logits[j] > best { best = logits[j]; chosen = j }
        } else if settings.topK == nil && settings.topP >= 1 {
            chosen = sampleCategorical(p, v, total: 1, uniform: uniform)
        } else {
            chosen = sampleFiltered(p, v, uniform: uniform)
        }
        return (Int32(chosen), logits[chosen] * invT - lse)
    }

    private func sampleCategorical(_ p: UnsafePointer<Float>, _ v: Int, total: Float, uniform: Float) -> Int {
        let u = uniform * total
        var cum: Float = 0
        var last = 0
        for j in 0..<v where p[j] > 0 {
            cum += p[j]
            last = j
            if u < cum { return j }
        }
        return last
    }

    private func sampleFiltered(_ p: UnsafeMutablePointer<Float>, _ v: Int, uniform: Float) -> Int {
        // Candidates in descending probability (ties broken by token id, so it is deterministic).
        order = (0..<Int32(v)).map { $0 }
        order.sort { p[Int($0)] > p[Int($1)] || (p[Int($0)] == p[Int($1)] && $0 < $1) }
        var keep = min(v, settings.topK ?? v)
        if settings.topP < 1 {
            var cum: Float = 0
            var n = 0
            while n < keep { cum += p[Int(order[n])]; n += 1; if cum >= settings.topP { break } }
            keep = max(1, n)
        }
        var total: Float = 0
        for i in 0..<keep { total += p[Int(order[i])] }
        let u = uniform * total
        var cum: Float = 0
        for i in 0..<keep {
            cum += p[Int(order[i])]
            if u < cum { return Int(order[i]) }
        }
        return Int(order[keep - 1])
    }
}
