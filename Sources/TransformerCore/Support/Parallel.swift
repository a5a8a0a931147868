import Foundation

/// Work splitting across the machine's cores.
///
/// Regions run on a persistent `WorkerPool` whose helpers spin briefly between regions, so a call
/// costs well under a microsecond when the regions come back to back; callers still only go
/// parallel when the work is worth it.
public enum Parallel {
    /// Number of worker threads used by the kernels (defaults to the active core count,
    /// overridable with the `RLHF_THREADS` environment variable).
    nonisolated(unsafe) public static var threadCount: Int = {
        if let s = ProcessInfo.processInfo.environment["RLHF_THREADS"], let n = Int(s), n > 0 { return n }
        return max(1, ProcessInfo.processInfo.activeProcessorCount)
    }()

    /// The helper threads, started on first use: one per thread of `threadCount` beyond the
    /// first, but no more threads than cores, since idle helpers spin for a moment (more workers
    /// than threads take turns).
    static let pool = WorkerPool(helpers: max(1, min(threadCount, ProcessInfo.processInfo.activeProcessorCount)) - 1)

    /// Runs `body(w)` for w in 0..<workers on the pool, worker 0 on the calling thread.
    @inline(__always)
    static func run(_ workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 { for w in 0..<workers { body(w) }; return }
        pool.run(workers, body)
    }

    /// Runs `body(i)` for every `i` in `0..<count`, statically split over the worker threads.
    /// When `cost` (in the caller's units) is below twice `minCostPerThread`, it all runs on this
    /// thread: waking a worker costs more than small work.
    @inline(__always)
    public static func forEach(_ count: Int, cost: Int = Int.max, minCostPerThread: Int = 0,
                               _ body: (Int) -> Void) {
        let threads = min(threadCount, count)
        if threads <= 1 || cost < minCostPerThread * 2 {
            for i in 0..<count { body(i) }
            return
        }
        run(threads) { t in
            var i = t
            while i < count { body(i); i += threads }
        }
    }

    /// Splits `0..<count` into one contiguous range per thread and runs `body(range)` on each.
    @inline(__always)
    public static func forRanges(_ count: Int, cost: Int = Int.max, minCostPerThread: Int = 0,
                                 _ body: (Range<Int>) -> Void) {
        let threads = min(threadCount, count)
        if threads <= 1 || cost < minCostPerThread * 2 {
            if count > 0 { body(0..<count) }
            return
        }
        run(threads) { t in
            let lo = count * t / threads, hi = count * (t + 1) / threads
            if lo < hi { body(lo..<hi) }
        }
    }
}
