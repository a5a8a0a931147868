import Foundation
import Synchronization
import XCTest

@testable import TransformerCore

final class WorkerPoolTests: XCTestCase {
    /// Every worker index runs exactly once per region, over many back-to-back regions, with more
    /// workers than threads, with regions nested inside regions, and with two threads starting
    /// regions at the same time (one of them then runs its region alone).
    func testEveryWorkerRunsOnceUnderNestingAndConcurrentCallers() {
        let pool = WorkerPool(helpers: 1)
        @Sendable func region(_ workers: Int, nested: Bool) -> [Int] {
            var counts = [Int](repeating: 0, count: workers)
            counts.withUnsafeMutableBufferPointer { c in
                let base = c.baseAddress!
                pool.run(workers) { w in
                    base[w] += 1
                    if nested {
                        var inner = [Int](repeating: 0, count: 3)
                        inner.withUnsafeMutableBufferPointer { ic in pool.run(3) { ic[$0] += 1 } }
                        if inner != [1, 1, 1] { base[w] += 100 }
                    }
                }
            }
            return counts
        }
        for i in 0..<2000 {
            let workers = 1 + i % 5
            XCTAssertEqual(region(workers, nested: i % 7 == 0), [Int](repeating: 1, count: workers), "region \(i)")
        }
        let group = DispatchGroup()
        let failures = Atomic<Int>(0)
        for _ in 0..<2 {
            DispatchQueue.global().async(group: group) {
                for i in 0..<2000 where region(2 + i % 3, nested: false) != [Int](repeating: 1, count: 2 + i % 3) {
                    failures.add(1, ordering: .relaxed)
                }
            }
        }
        group.wait()
        XCTAssertEqual(failures.load(ordering: .relaxed), 0)
    }

    /// Isolated parts get scratch slots of their own; a part that starts isolated parts itself
    /// runs them on its own slots, never on those of the part running beside it.
    func testNestedIsolatedPartsKeepTheirSlots() {
        var outer = [Int](repeating: -1, count: 2), inner = [[Int]](repeating: [-1, -1], count: 2)
        outer.withUnsafeMutableBufferPointer { o in
            inner.withUnsafeMutableBufferPointer { i in
                Parallel.isolated(2) { w in
                    o[w] = Parallel.scratchBase
                    var seen = [-1, -1]
                    Parallel.isolated(2) { v in seen[v] = Parallel.scratchBase }
                    i[w] = seen
                }
            }
        }
        XCTAssertEqual(Set(outer).count, 2, "the two parts use different slots")
        for w in 0..<2 { XCTAssertEqual(inner[w], [outer[w], outer[w]]) }
        XCTAssertEqual(Parallel.scratchBase, 0, "the base is restored after the region")
    }
}
