extension Parallel {
    /// Runs `tasks` work items over `threads` workers; `body(task, worker)` gets the index of the
    /// worker running it, so each worker can own a scratch buffer.
    @inline(__always)
    static func forEachTask(_ tasks: Int, threads: Int, _ body: (Int, Int) -> Void) {
        let workers = min(threads, tasks)
        if workers <= 1 {
            for i in 0..<tasks { body(i, 0) }
            return
        }
        run(workers) { w in
            var i = w
            while i < tasks { body(i, w); i += workers }
        }
    }
}
