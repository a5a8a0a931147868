/// Keys and values of every layer for a batch of sequences being decoded.
///
/// Keys are stored transposed per key/value head, (B, NKV, hs, maxT), so one query's scores are an
/// axpy over positions; values are (B, NKV, maxT, hs). With grouped-query attention only the
/// key/value heads are held. `mask` marks real tokens (left padding is 0).
public final class KVCache {
    /// Batch size and capacity in positions.
    public let batch: Int, capacity: Int
    let keys: [FloatBuffer], values: [FloatBuffer]
    /// 1 for positions that hold a real token, (B, capacity).
    var mask: [UInt8]
    /// Positions filled so far.
    public internal(set) var length = 0

    /// A cache for `batch` sequences of at least `capacity` positions: the capacity is rounded
    /// up to whole blocks of 16, so that attention reads whole vectors of positions.
    public init(config: ModelConfig, batch: Int, capacity: Int) {
        let capacity = (capacity + 15) & ~15
        self.batch = batch; self.capacity = capacity
        let size = batch * config.kvDim * capacity
        keys = (0..<config.nLayer).map { _ in FloatBuffer(count: size) }
        values = (0..<config.nLayer).map { _ in FloatBuffer(count: size) }
        mask = [UInt8](repeating: 0, count: batch * capacity)
    }

    /// Floats held (for memory reports).
    public var floatCount: Int { keys.reduce(0) { $0 + $1.count } * 2 }
}
