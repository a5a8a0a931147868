import Foundation
import Synchronization

/// Persistent worker threads for the kernels' parallel regions.
///
/// A region is announced by bumping a generation counter; idle workers spin on it for a short
/// while before sleeping on a condition variable, so the back-to-back regions of a forward or
/// backward pass (tens of microseconds apart) start without a kernel round trip, while a process
/// that stops computing stops using the other cores within about a millisecond.
///
/// One region runs at a time. A region started while another is running (from another thread,
/// or from inside a region) runs on the calling thread alone, so nesting cannot deadlock.
final class WorkerPool: @unchecked Sendable {
    /// Helper threads; the calling thread is worker 0, helpers are workers 1…helpers.
    let helpers: Int
    private let generation = Atomic<Int>(0)
    private let finished = Atomic<Int>(0)
    private let sleepers = Atomic<Int>(0)
    private let busy = Atomic<Bool>(false)
    private var mutex = pthread_mutex_t()
    private var wake = pthread_cond_t()
    /// The current region's body and its worker count; written before the generation is bumped.
    nonisolated(unsafe) private var body: ((Int) -> Void)?
    nonisolated(unsafe) private var workers = 0

    /// How long an idle helper spins before sleeping, in nanoseconds.
    static let spinNanoseconds: UInt64 = 1_000_000

    init(helpers: Int) {
        self.helpers = helpers
        pthread_mutex_init(&mutex, nil)
        pthread_cond_init(&wake, nil)
        for i in 0..<helpers {
            let t = Thread { [unowned self] in self.helperLoop(index: i + 1) }
            t.name = "rlhf-worker-\(i + 1)"
            t.start()
        }
    }

    /// Runs `body(w)` for every w in 0..<workers, worker 0 on this thread. With more workers than
    /// threads, thread i runs workers i, i + threads, … one after another.
    func run(_ workers: Int, _ body: (Int) -> Void) {
        if workers <= 1 || !busy.compareExchange(expected: false, desired: true, ordering: .acquiring).exchanged {
            for w in 0..<workers { body(w) }
            return
        }
        withoutActuallyEscaping(body) { body in
            self.body = body
            self.workers = workers
            finished.store(0, ordering: .relaxed)
            generation.add(1, ordering: .sequentiallyConsistent)
            if sleepers.load(ordering: .sequentiallyConsistent) > 0 {
                pthread_mutex_lock(&mutex)
                pthread_cond_broadcast(&wake)
                pthread_mutex_unlock(&mutex)
            }
            var w = 0
            while w < workers { body(w); w += helpers + 1 }
            // Every helper reports, including those with no share of this region.
            while finished.load(ordering: .acquiring) < helpers {}
            self.body = nil
        }
        busy.store(false, ordering: .releasing)
    }

    private func helperLoop(index: Int) {
        var seen = 0
        while true {
            var spins = 0
            var deadline: UInt64 = 0
            while generation.load(ordering: .acquiring) == seen {
                spins += 1
                if spins & 1023 != 0 { continue }
                sched_yield() // let another runnable thread on this core go first
                let now = DispatchTime.now().uptimeNanoseconds
                if deadline == 0 { deadline = now + Self.spinNanoseconds; continue }
                if now < deadline { continue }
                pthread_mutex_lock(&mutex)
                sleepers.add(1, ordering: .sequentiallyConsistent)
                while generation.load(ordering: .sequentiallyConsistent) == seen { pthread_cond_wait(&wake, &mutex) }
                sleepers.subtract(1, ordering: .sequentiallyConsistent)
                pthread_mutex_unlock(&mutex)
            }
            seen = generation.load(ordering: .acquiring)
            if let body {
                var w = index
                while w < workers { body(w); w += helpers + 1 }
            }
            finished.add(1, ordering: .releasing)
        }
    }
}
