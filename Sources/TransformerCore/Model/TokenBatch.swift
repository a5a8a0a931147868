/// A batch of B sequences of T tokens with an attention mask and position ids.
///
/// Padding tokens have mask 0; position ids count only real tokens, so a left-padded sequence
/// sees the same positions as the unpadded one.
public struct TokenBatch: Sendable {
    /// Batch size.
    public let batch: Int
    /// Sequence length (including padding).
    public let length: Int
    /// Token ids, (B, T) row-major.
    public var tokens: [Int32]
    /// 1 for a real token, 0 for padding, (B, T).
    public var mask: [UInt8]
    /// Position ids, (B, T).
    public var positions: [Int32]

    /// A batch with no padding; positions 0..<T.
    public init(tokens: [Int32], batch: Int, length: Int) {
        precondition(tokens.count == batch * length, "TokenBatch: \(tokens.count) tokens for \(batch)×\(length)")
        self.batch = batch; self.length = length; self.tokens = tokens
        mask = [UInt8](repeating: 1, count: batch * length)
        positions = (0..<batch * length).map { Int32($0 % length) }
    }

    /// Sequences of different lengths, left-padded with `pad` to the longest.
    public init(leftPadding sequences: [[Int32]], pad: Int32) {
        self.init(padding: sequences, pad: pad, left: true)
    }

    /// Sequences of different lengths, right-padded with `pad` to the longest.
    public init(rightPadding sequences: [[Int32]], pad: Int32) {
        self.init(padding: sequences, pad: pad, left: false)
    }

    private init(padding sequences: [[Int32]], pad: Int32, left: Bool) {
        let t = max(1, sequences.map(\.count).max() ?? 1)
        batch = sequences.count; length = t
        tokens = []; mask = []; positions = []
        tokens.reserveCapacity(batch * t)
        for s in sequences {
            let padCount = t - s.count
            let real = s.enumerated().map { (Int32($0.offset), $0.element) }
            if left {
                tokens += [Int32](repeating: pad, count: padCount) + s
                mask += [UInt8](repeating: 0, count: padCount) + [UInt8](repeating: 1, count: s.count)
                positions += [Int32](repeating: 0, count: padCount) + real.map(\.0)
            } else {
                tokens += s + [Int32](repeating: pad, count: padCount)
                mask += [UInt8](repeating: 1, count: s.count) + [UInt8](repeating: 0, count: padCount)
                positions += real.map(\.0) + [Int32](repeating: Int32(max(0, s.count - 1)), count: padCount)
            }
        }
    }

    /// Index (within the row) of the last real token of sequence `b`, or 0 if it has none.
    public func lastRealIndex(_ b: Int) -> Int {
        var t = length - 1
        while t > 0 && mask[b * length + t] == 0 { t -= 1 }
        return t
    }
}
