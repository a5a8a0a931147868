import XCTest

@testable import TransformerCore

final class GemmTests: EveryPathTestCase {
    /// Reference product in Double.
    func naive(m: Int, n: Int, k: Int, a: MatrixOperand, b: MatrixOperand) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a.base[i * a.rowStride + p * a.colStride]) * Double(b.base[p * b.rowStride + j * b.colStride]) }
                c[i * n + j] = s
            }
        }
        return c
    }

    /// With `bf16`, B holds values that bfloat16 represents exactly and the product reads them
    /// from a bfloat16 copy: the result must be that of the same floats.
    func check(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, accumulate: Bool, bias: Bool, bf16: Bool = false, line: UInt = #line) {
        var rng = SeededRandom(seed: UInt64(m * 1_000_003 + n * 1009 + k))
        let a = FloatBuffer((0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
        let b = FloatBuffer((0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
        let half = UnsafeMutablePointer<BFloat16>.allocate(capacity: max(1, k * n))
        defer { half.deallocate() }
        if bf16 {
            for i in 0..<k * n { half[i] = BFloat16(b[i]); b[i] = half[i].float }
        }
        let bv = FloatBuffer((0..<n).map { _ in rng.uniformFloat() })
        let c0 = (0..<m * n).map { _ in rng.uniformFloat() }
        let c = FloatBuffer(c0)
        let aOp: MatrixOperand = transA ? .transposed(a.pointer, columns: m) : .rowMajor(a.pointer, columns: k)
        let bOp: MatrixOperand = transB ? .transposed(b.pointer, columns: k) : .rowMajor(b.pointer, columns: n)
        if bf16 {
            let hOp: BF16MatrixOperand = transB ? .transposed(half, columns: k) : .rowMajor(half, columns: n)
            Gemm.multiply(
                m: m, n: n, k: k, a: aOp, b: hOp, c: c.pointer, ldc: n, accumulate: accumulate,
                bias: bias ? UnsafePointer(bv.pointer) : nil)
        } else {
            Gemm.multiply(
                m: m, n: n, k: k, a: aOp, b: bOp, c: c.pointer, ldc: n, accumulate: accumulate,
                bias: bias ? UnsafePointer(bv.pointer) : nil)
        }
        let ref = naive(m: m, n: n, k: k, a: aOp, b: bOp)
        var worst = 0.0
        for i in 0..<m {
            for j in 0..<n {
                var expect = ref[i * n + j]
                if accumulate { expect += Double(c0[i * n + j]) } else if bias { expect += Double(bv[j]) }
                worst = max(worst, abs(expect - Double(c[i * n + j])))
            }
        }
        XCTAssertLessThan(
            worst, 1e-4 * Double(max(1, k)).squareRoot(),
            "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) acc \(accumulate) bias \(bias) bf16 \(bf16)", line: line)
    }

    /// The product's shapes: edge sizes around each path's tiles and blocks.
    static let shapes = [
        (1, 1, 1), (5, 7, 3), (12, 32, 16), (13, 33, 17), (8, 70, 40), (24, 64, 300), (3, 100, 33),
        (100, 45, 257), (97, 129, 513), (200, 64, 20), (6, 200, 50), (1, 96, 9), (8, 4800, 64),
        (4, 200, 30), (2, 300, 17), (4, 96, 5), (6, 200, 1100), (8, 96, 600), (5, 300, 513),
        (4, 160, 40), (7, 140, 700), (8, 130, 20),
        (6, 16, 16), (7, 17, 9), (4, 24, 5), (8, 50, 30), (12, 16, 8), (13, 8, 3), (2, 9, 12),
        (8, 128, 40), (5, 56, 9), (3, 200, 33),
        // a last panel of 4 or 8 rows after whole 12-row panels (the narrow tiles), and sampling's
        // 64 rows, which split the columns between the workers
        (64, 200, 300), (20, 96, 40), (44, 70, 33), (30, 130, 270),
    ]

    /// B in bfloat16 (frozen weights held at half size) on every path: the decode tiles and
    /// dot-product kernels that widen B as they stream it, the leftover columns, and the blocked
    /// path that widens B as it packs it.
    func testBFloat16B() {
        forEachPath {
            for (m, n, k) in Self.shapes {
                for transB in [false, true] {
                    check(m: m, n: n, k: k, transA: false, transB: transB, accumulate: false, bias: false, bf16: true)
                    check(m: m, n: n, k: k, transA: false, transB: transB, accumulate: true, bias: false, bf16: true)
                    check(m: m, n: n, k: k, transA: true, transB: transB, accumulate: false, bias: true, bf16: true)
                }
            }
            check(m: 300, n: 4200, k: 600, transA: false, transB: false, accumulate: false, bias: true, bf16: true)
            check(m: 8, n: 5000, k: 96, transA: false, transB: true, accumulate: false, bias: false, bf16: true)
        }
    }

    /// Rounding to bfloat16 by its definition: the nearest of the two neighbours that keep 7
    /// mantissa bits, ties to the even one; overflow to infinity; NaN kept.
    func testBFloat16Rounding() {
        let ulp1: Float = 1.0 / 128 // spacing of bfloat16 in [1, 2)
        XCTAssertEqual(BFloat16(1 + ulp1 / 2).float, 1) // tie → even (1.0)
        XCTAssertEqual(BFloat16(1 + 3 * ulp1 / 2).float, 1 + 2 * ulp1) // tie → even (1 + 2 ulp)
        XCTAssertEqual(BFloat16(1 + ulp1 / 2 + ulp1 / 64).float, 1 + ulp1) // above the tie → up
        XCTAssertEqual(BFloat16(-(1 + ulp1 / 4)).float, -1)
        XCTAssertEqual(BFloat16(Float.greatestFiniteMagnitude).float, .infinity)
        XCTAssertEqual(BFloat16(-Float.infinity).float, -.infinity)
        XCTAssertTrue(BFloat16(.nan).float.isNaN)
        var rng = SeededRandom(seed: 7)
        for _ in 0..<10_000 {
            let x = (rng.uniformFloat() - 0.5) * 1000
            let r = BFloat16(x).float
            // r is representable, and no representable neighbour is nearer
            XCTAssertEqual(r.bitPattern & 0xFFFF, 0)
            let step = abs(Float(bitPattern: (r.bitPattern & 0xFF80_0000))) / 128
            XCTAssertLessThanOrEqual(abs(r - x), step / 2 * 1.0000001, "\(x) → \(r)")
        }
    }

    func testShapesAndTransposes() {
        forEachPath {
            // Edge sizes around the 12×32 AVX-512 tile, the 96-row block and the 256-deep K block,
            // the decode paths (m ≤ 8 and m ≤ 24) and the blocked path; around the AVX2 and SSE
            // tiles (6×16, 6×8, 4×24 decode, 4×8); decode panels that leave whole narrow panels.
            for (m, n, k) in Self.shapes {
                for transA in [false, true] {
                    for transB in [false, true] {
                        check(m: m, n: n, k: k, transA: transA, transB: transB, accumulate: false, bias: false)
                    }
                }
                check(m: m, n: n, k: k, transA: false, transB: false, accumulate: true, bias: false)
                check(m: m, n: n, k: k, transA: false, transB: true, accumulate: false, bias: true)
                check(m: m, n: n, k: k, transA: false, transB: true, accumulate: true, bias: false)
                check(m: m, n: n, k: k, transA: false, transB: false, accumulate: false, bias: true)
                check(m: m, n: n, k: k, transA: true, transB: false, accumulate: true, bias: false)
            }
        }
    }

    /// The workers take runs of rows as they come free, so which thread computes which tile
    /// changes from run to run; the product must not: the same bits with one thread, two or
    /// three (more workers than cores take turns), for row counts that leave a partial panel,
    /// with A transposed or row-major, and against the reference.
    func testProductIsTheSameBitsForAnyThreadCount() {
        forEachPath {
            for (m, n, k, transA) in [(1024, 96, 70, false), (301, 200, 600, true), (517, 40, 300, false)] {
                var rng = SeededRandom(seed: UInt64(m + n + k))
                let a = FloatBuffer((0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
                let b = FloatBuffer((0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
                let aOp: MatrixOperand = transA ? .transposed(a.pointer, columns: m) : .rowMajor(a.pointer, columns: k)
                func product(threads: Int) -> [Float] {
                    let saved = Parallel.threadCount
                    Parallel.threadCount = threads
                    defer { Parallel.threadCount = saved }
                    let c = FloatBuffer(count: m * n)
                    Gemm.multiply(m: m, n: n, k: k, a: aOp, b: .rowMajor(b.pointer, columns: n), c: c.pointer, ldc: n)
                    return c.array
                }
                let one = product(threads: 1)
                for threads in [2, 3] {
                    for _ in 0..<3 {
                        let other = product(threads: threads)
                        XCTAssertEqual(
                            zip(one, other).filter { $0.bitPattern != $1.bitPattern }.count, 0,
                            "elements that differ, one thread against \(threads): m \(m) n \(n) k \(k)")
                    }
                }
                let ref = naive(m: m, n: n, k: k, a: aOp, b: .rowMajor(b.pointer, columns: n))
                let worst = zip(ref, one).map { abs($0 - Double($1)) }.max() ?? 0
                XCTAssertLessThan(worst, 1e-4 * Double(k).squareRoot(), "m \(m) n \(n) k \(k)")
            }
        }
    }

    /// Inside `keepingPackedWeights` a weight operand of a product with few row blocks is packed
    /// once and kept: the same bits as packing it per product, a reported change (or a rewrite
    /// the samples catch) is seen, and the copies are freed when the last scope closes.
    func testKeptWeightsGiveTheSameBitsAndAreFreedWithTheScope() {
        forEachPath {
            for (m, n, k, transB) in [(64, 300, 600, true), (30, 130, 70, false), (200, 96, 300, true), (9, 4200, 40, true), (20, 4200, 300, true)] {
                var rng = SeededRandom(seed: UInt64(m * 7 + n))
                let a = FloatBuffer((0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
                let w = FloatBuffer((0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
                let bias = FloatBuffer((0..<n).map { _ in rng.uniformFloat() })
                let bOp: MatrixOperand = transB ? .transposed(w.pointer, columns: k) : .rowMajor(w.pointer, columns: n)
                func product() -> [Float] {
                    let c = FloatBuffer(count: m * n)
                    Gemm.multiply(
                        m: m, n: n, k: k, a: .rowMajor(a.pointer, columns: k), b: bOp, c: c.pointer, ldc: n, bias: UnsafePointer(bias.pointer),
                        weight: true)
                    return c.array
                }
                let fresh = product()
                XCTAssertEqual(Gemm.keptPackedFloatCount, 0, "nothing is kept outside a scope")
                Gemm.keepingPackedWeights {
                    XCTAssertEqual(product().map(\.bitPattern), fresh.map(\.bitPattern), "m \(m) n \(n) k \(k)")
                    XCTAssertGreaterThanOrEqual(Gemm.keptPackedFloatCount, k * n, "the weight is kept, whole")
                    Gemm.keepingPackedWeights { XCTAssertEqual(product(), fresh) }
                    XCTAssertGreaterThan(Gemm.keptPackedFloatCount, 0, "an inner scope leaves the copies to the outer one")
                    // One element changed and reported, as AdamW does: the next product sees it.
                    w[3 * n + 5] += 0.25
                    Gemm.weightsChanged(w.pointer, count: w.count)
                    let changed = product()
                    XCTAssertNotEqual(changed, fresh)
                    // Every element rewritten without a report: the samples catch it.
                    for i in 0..<w.count { w[i] *= -1 }
                    let rewritten = product()
                    let worst = (0..<m * n).map { abs((rewritten[$0] - bias[$0 % n]) + (changed[$0] - bias[$0 % n])) }.max()!
                    XCTAssertLessThan(worst, 1e-3, "A·(−W) = −(A·W)")
                }
                XCTAssertEqual(Gemm.keptPackedFloatCount, 0, "the copies go with the last scope")
                let after = product()
                Gemm.keepingPackedWeights { XCTAssertEqual(product(), after) }
            }
        }
    }

    /// A store that is full keeps what it holds and packs nothing more (the product then packs
    /// per block), rather than dropping the weights the next step needs again.
    func testAFullStoreOfKeptWeightsKeepsWhatItHolds() {
        let k = 40, n = 96, width = Kernels.active.gemmNR
        let w1 = FloatBuffer(count: k * n), w2 = FloatBuffer(count: k * n)
        for i in 0..<k * n { w1[i] = Float(i % 7); w2[i] = Float(i % 5) }
        let store = PackedWeights(maxBytes: k * n * 4 + 1024)
        let first = store.panels(MatrixOperand.rowMajor(w1.pointer, columns: n), k: k, n: n, width: width, threads: 1)
        XCTAssertNotNil(first)
        XCTAssertNil(store.panels(MatrixOperand.rowMajor(w2.pointer, columns: n), k: k, n: n, width: width, threads: 1), "it would not fit")
        XCTAssertTrue(store.panels(MatrixOperand.rowMajor(w1.pointer, columns: n), k: k, n: n, width: width, threads: 1) === first)
        XCTAssertEqual(store.count, 1)
    }

    func testLargeParallelProduct() {
        forEachPath {
            // Big enough to go parallel and to span several K and N blocks.
            check(m: 300, n: 4200, k: 600, transA: false, transB: false, accumulate: false, bias: true)
            check(m: 8, n: 5000, k: 96, transA: false, transB: true, accumulate: false, bias: false)
        }
    }
}
