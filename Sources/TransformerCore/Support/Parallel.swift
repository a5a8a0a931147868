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
    public static func forEach(
        _ count: Int, cost: Int = Int.max, minCostPerThread: Int = 0,
        _ body: (Int) -> Void
    ) {
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
    public static func forRanges(
        _ count: Int, cost: Int = Int.max, minCostPerThread: Int = 0,
        _ body: (Range<Int>) -> Void
    ) {
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

extension Parallel {
    /// Thread-specific offset of the scratch slots a thread's kernels use (stored + 1, so an
    /// unset key reads as 0).
    private static let scratchBaseKey: pthread_key_t = {
        var key = pthread_key_t()
        // (not inside precondition: -Ounchecked builds do not evaluate its condition)
        let status = pthread_key_create(&key, nil)
        if status != 0 { fatalError("pthread_key_create failed (\(status))") }
        return key
    }()

    /// First scratch slot of the calling thread: 0, except inside `isolated`, where part w's
    /// kernels (and the regions they start, which then run on that thread alone) use slots
    /// w·threadCount ..< (w+1)·threadCount.
    @inline(__always) static var scratchBase: Int {
        max(0, Int(bitPattern: pthread_getspecific(scratchBaseKey)) - 1)
    }

    /// Whether the calling thread is running a part of `isolated`.
    @inline(__always) static var insideIsolatedPart: Bool { pthread_getspecific(scratchBaseKey) != nil }

    /// Runs `body(0)`, …, `body(parts − 1)` at the same time, one per pool thread, each with
    /// scratch slots of its own, so each part may run whole kernels sequences (a model's forward
    /// and backward) without meeting the others. Everything inside runs single-threaded.
    /// Called from inside a part, the parts run one after another on that part's own slots
    /// (re-basing them could land on the slots of a part running beside it).
    public static func isolated(_ parts: Int, _ body: (Int) -> Void) {
        if insideIsolatedPart {
            for w in 0..<parts { body(w) }
            return
        }
        precondition(parts * threadCount <= ScratchSet.slots, "isolated: \(parts) parts need more scratch slots")
        run(parts) { w in
            let saved = pthread_getspecific(scratchBaseKey)
            pthread_setspecific(scratchBaseKey, UnsafeRawPointer(bitPattern: w * threadCount + 1))
            body(w)
            pthread_setspecific(scratchBaseKey, saved)
        }
    }
}

/// Scratch areas of one kind, one per worker of a region, for the calling thread (see
/// `Parallel.scratchBase`). All slots exist from the start, so threads never grow the set.
final class ScratchSet: @unchecked Sendable {
    /// Enough for every worker of every part when the work is split into `threadCount` parts.
    static let slots = max(4, Parallel.threadCount * Parallel.threadCount)
    private let areas = (0..<ScratchSet.slots).map { _ in Scratch() }

    /// The scratch of `worker` in the current region.
    @inline(__always) func callAsFunction(_ worker: Int) -> Scratch {
        let i = Parallel.scratchBase + worker
        precondition(i < areas.count, "scratch slot \(i) past \(areas.count) (threadCount raised after first use?)")
        return areas[i]
    }
}
