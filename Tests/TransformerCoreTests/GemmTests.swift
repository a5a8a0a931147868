import XCTest
@testable import TransformerCore

final class GemmTests: EveryPathTestCase {
    /// Reference product in Double.
    func naive(m: Int, n: Int, k: Int, a: MatrixOperand, b: MatrixOperand) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += Double(a.base[i * a.rowStride + p * a.colStride]) * Double(b.base[p * b.rowStride + j * b.colStride]) }
            c[i * n + j] = s
        } }
        return c
    }

    func check(m: Int, n: Int, k: Int, transA: Bool, transB: Bool, accumulate: Bool, bias: Bool, line: UInt = #line) {
        var rng = SeededRandom(seed: UInt64(m * 1_000_003 + n * 1009 + k))
        let a = FloatBuffer((0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
        let b = FloatBuffer((0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
        let bv = FloatBuffer((0..<n).map { _ in rng.uniformFloat() })
        let c0 = (0..<m * n).map { _ in rng.uniformFloat() }
        let c = FloatBuffer(c0)
        let aOp: MatrixOperand = transA ? .transposed(a.pointer, columns: m) : .rowMajor(a.pointer, columns: k)
        let bOp: MatrixOperand = transB ? .transposed(b.pointer, columns: k) : .rowMajor(b.pointer, columns: n)
        Gemm.multiply(m: m, n: n, k: k, a: aOp, b: bOp, c: c.pointer, ldc: n, accumulate: accumulate,
                      bias: bias ? UnsafePointer(bv.pointer) : nil)
        let ref = naive(m: m, n: n, k: k, a: aOp, b: bOp)
        var worst = 0.0
        for i in 0..<m { for j in 0..<n {
            var expect = ref[i * n + j]
            if accumulate { expect += Double(c0[i * n + j]) } else if bias { expect += Double(bv[j]) }
            worst = max(worst, abs(expect - Double(c[i * n + j])))
        } }
        XCTAssertLessThan(worst, 1e-4 * Double(max(1, k)).squareRoot(),
                          "m \(m) n \(n) k \(k) transA \(transA) transB \(transB) acc \(accumulate) bias \(bias)", line: line)
    }

    func testShapesAndTransposes() {
        forEachPath {
            // Edge sizes around the 12×32 AVX-512 tile, the 96-row block and the 256-deep K block,
            // the decode paths (m ≤ 8 and m ≤ 24) and the blocked path.
            let shapes = [(1, 1, 1), (5, 7, 3), (12, 32, 16), (13, 33, 17), (8, 70, 40), (24, 64, 300), (3, 100, 33),
                          (100, 45, 257), (97, 129, 513), (200, 64, 20), (6, 200, 50), (1, 96, 9), (8, 4800, 64),
                          (4, 200, 30), (2, 300, 17), (4, 96, 5), (6, 200, 1100), (8, 96, 600), (5, 300, 513),
                          (4, 160, 40), (7, 140, 700), (8, 130, 20),
                          // and around the AVX2 and SSE tiles (6×16, 6×8, 4×24 decode, 4×8)
                          (6, 16, 16), (7, 17, 9), (4, 24, 5), (8, 50, 30), (12, 16, 8), (13, 8, 3), (2, 9, 12),
                      // decode panels chosen to leave whole narrow panels (AVX2: 128 = 4×24 + 2×16)
                      (8, 128, 40), (5, 56, 9), (3, 200, 33)]
            for (m, n, k) in shapes {
                for transA in [false, true] { for transB in [false, true] {
                    check(m: m, n: n, k: k, transA: transA, transB: transB, accumulate: false, bias: false)
                } }
                check(m: m, n: n, k: k, transA: false, transB: false, accumulate: true, bias: false)
                check(m: m, n: n, k: k, transA: false, transB: true, accumulate: false, bias: true)
                check(m: m, n: n, k: k, transA: false, transB: true, accumulate: true, bias: false)
                check(m: m, n: n, k: k, transA: false, transB: false, accumulate: false, bias: true)
                check(m: m, n: n, k: k, transA: true, transB: false, accumulate: true, bias: false)
            }
        }
    }

    func testLargeParallelProduct() {
        forEachPath {
            // Big enough to go parallel and to span several K and N blocks.
            check(m: 300, n: 4200, k: 600, transA: false, transB: false, accumulate: false, bias: true)
            check(m: 8, n: 5000, k: 96, transA: false, transB: true, accumulate: false, bias: false)
        }
    }
}
