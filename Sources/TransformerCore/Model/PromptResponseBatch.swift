/// Rows of (prompt, response) token sequences laid out as generation lays them out: prompts
/// left-padded to the longest prompt P, each response right after its prompt and right-padded to
/// width R. Position ids count real tokens only, so a row sees the positions it had when it was
/// sampled. PPO scores its rollouts this way and DPO its comparisons.
public struct PromptResponseBatch: Sendable {
    /// Rows, longest prompt, response width.
    public let rows: Int, p: Int, r: Int
    /// Row length P + R.
    public var t: Int { p + r }
    /// (rows, P + R), row-major.
    public private(set) var tokens: [Int32], mask: [UInt8], positions: [Int32]
    /// Response length of each row.
    public let lengths: [Int]

    /// `responses[i]` follows `prompts[i]`; `width` must be at least the longest response.
    public init(prompts: [[Int32]], responses: [[Int32]], width r: Int, pad: Int32) {
        precondition(!prompts.isEmpty && prompts.count == responses.count, "one response per prompt")
        precondition(responses.allSatisfy { $0.count <= r }, "a response is longer than the width")
        rows = prompts.count; p = prompts.map(\.count).max()!; self.r = r
        lengths = responses.map(\.count)
        tokens = []; mask = []; positions = []
        for (pr, resp) in zip(prompts, responses) {
            let padCount = p - pr.count
            tokens += [Int32](repeating: pad, count: padCount) + pr + resp + [Int32](repeating: pad, count: r - resp.count)
            mask +=
                [UInt8](repeating: 0, count: padCount) + [UInt8](repeating: 1, count: pr.count + resp.count)
                + [UInt8](repeating: 0, count: r - resp.count)
            let last = Int32(pr.count + max(0, resp.count) - 1)
            positions +=
                [Int32](repeating: 0, count: padCount) + (0..<Int32(pr.count + resp.count)).map { $0 }
                + [Int32](repeating: last, count: r - resp.count)
        }
    }

    /// A batch of some rows.
    public func batch(_ which: [Int]) -> TokenBatch {
        var b = TokenBatch(tokens: which.flatMap { tokens[($0 * t)..<(($0 + 1) * t)] }, batch: which.count, length: t)
        b.mask = which.flatMap { mask[($0 * t)..<(($0 + 1) * t)] }
        b.positions = which.flatMap { positions[($0 * t)..<(($0 + 1) * t)] }
        return b
    }

    /// Next-token targets for the response tokens of some rows (the logits at P+j−1 predict
    /// response token j), −1 elsewhere.
    public func targets(_ which: [Int]) -> [Int32] {
        var out = [Int32](repeating: -1, count: which.count * t)
        for (k, row) in which.enumerated() {
            for j in 0..<lengths[row] { out[k * t + p + j - 1] = tokens[row * t + p + j] }
        }
        return out
    }

    /// The positions whose logits predict response tokens (P−1 ..< P+R−1): an activation set's
    /// `logitWindow` for losses over the responses only.
    public var logitWindow: Range<Int> { (p - 1)..<(p - 1 + r) }

    /// Gathers per-position values (k·t + P + j − 1) into (rows, R) response order.
    public func gather(_ x: [Float], _ which: [Int], into out: inout [Float]) {
        for (k, row) in which.enumerated() {
            for j in 0..<lengths[row] { out[row * r + j] = x[k * t + p + j - 1] }
        }
    }
}
