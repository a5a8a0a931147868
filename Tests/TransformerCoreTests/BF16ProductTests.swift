import XCTest

@testable import TransformerCore

/// The products in `--precision bf16`: held to bounds derived from bfloat16's unit roundoff
/// against an f64 reference on every path, and the emulated tiles held to the hardware one.
final class BF16ProductTests: EveryPathTestCase {
    /// Unit roundoff of bfloat16 (8 significant bits) and of single precision.
    static let uBF16 = 0x1p-8, uF32 = 0x1p-24

    struct Case {
        let m: Int, n: Int, k: Int, transA: Bool, transB: Bool, accumulate: Bool, bias: Bool, weight: Bool
    }

    /// Edge sizes around the 12 × 32 tile, the 96-row block, the 512-value k block (odd k too),
    /// decode-sized products, both operands transposed or not.
    static let cases: [Case] = [
        (1, 1, 1), (5, 7, 3), (12, 32, 16), (13, 33, 17), (8, 70, 40), (24, 64, 300), (100, 45, 257),
        (97, 129, 513), (200, 64, 1030), (4, 200, 30), (1, 96, 9), (7, 140, 700), (30, 40, 2),
    ].enumerated().map { i, s in
        Case(m: s.0, n: s.1, k: s.2, transA: i % 2 == 1, transB: i % 3 == 1, accumulate: i % 4 == 2, bias: i % 4 == 3, weight: i % 2 == 0)
    }

    /// Runs one case in bf16 and returns C with the two references: the exact product of the
    /// single-precision operands, and that of the operands rounded to bfloat16, with Σ|a||b|.
    func run(_ t: Case, seed: UInt64 = 1) -> (c: [Float], exact: [Double], rounded: [Double], magnitude: [Double]) {
        var rng = SeededRandom(seed: seed &+ UInt64(t.m * 1_000_003 + t.n * 1009 + t.k))
        let a = FloatBuffer((0..<t.m * t.k).map { _ in rng.uniformFloat() * 2 - 1 })
        let b = FloatBuffer((0..<t.k * t.n).map { _ in rng.uniformFloat() * 2 - 1 })
        let bias = FloatBuffer((0..<t.n).map { _ in rng.uniformFloat() })
        let c0 = (0..<t.m * t.n).map { _ in rng.uniformFloat() }
        let c = FloatBuffer(c0)
        let aOp: MatrixOperand = t.transA ? .transposed(a.pointer, columns: t.m) : .rowMajor(a.pointer, columns: t.k)
        let bOp: MatrixOperand = t.transB ? .transposed(b.pointer, columns: t.k) : .rowMajor(b.pointer, columns: t.n)
        Kernels.using(precision: .bf16) {
            Gemm.multiply(
                m: t.m, n: t.n, k: t.k, a: aOp, b: bOp, c: c.pointer, ldc: t.n, accumulate: t.accumulate,
                bias: t.bias ? UnsafePointer(bias.pointer) : nil, weight: t.weight)
        }
        Gemm.weightsChanged(b.pointer, count: b.count) // the buffer is freed: its address may come back
        var exact = [Double](repeating: 0, count: t.m * t.n), rounded = exact, magnitude = exact
        for i in 0..<t.m {
            for j in 0..<t.n {
                var e = 0.0, r = 0.0, s = 0.0
                for p in 0..<t.k {
                    let x = aOp.base[i * aOp.rowStride + p * aOp.colStride], y = bOp.base[p * bOp.rowStride + j * bOp.colStride]
                    e += Double(x) * Double(y)
                    r += Double(BFloat16(x).float) * Double(BFloat16(y).float)
                    s += abs(Double(x) * Double(y))
                }
                let start = t.accumulate ? Double(c0[i * t.n + j]) : (t.bias ? Double(bias[j]) : 0)
                exact[i * t.n + j] = start + e
                rounded[i * t.n + j] = start + r
                magnitude[i * t.n + j] = s + abs(start)
            }
        }
        return ((0..<t.m * t.n).map { c[$0] }, exact, rounded, magnitude)
    }

    /// Against the exact product: each operand's rounding is a relative error of at most u, so each
    /// product is off by at most (2u + u²)|a||b|; the single-precision sum of k terms (and the
    /// start value) adds at most (k + 1)·u₃₂ of Σ|a||b| (first order). Against the product of the
    /// rounded operands, only the second part remains: that it holds shows the operands really
    /// were rounded to bfloat16 and nothing else was lost.
    func testProductsStayWithinTheBoundsOfBFloat16RoundingOnEveryPath() {
        // In bf16, forEachPath includes avx512bf16 where the CPU has it.
        Kernels.using(precision: .bf16) { forEachPath(body) }
        func body() {
            for t in Self.cases {
                let (c, exact, rounded, magnitude) = run(t)
                let u = Self.uBF16, sumBound = Double(t.k + 2) * Self.uF32 * 1.01
                var worstExact = 0.0, worstRounded = 0.0, anyRoundingVisible = false
                for i in 0..<c.count {
                    let m = max(magnitude[i], 1e-30)
                    worstExact = max(worstExact, abs(Double(c[i]) - exact[i]) / m)
                    worstRounded = max(worstRounded, abs(Double(c[i]) - rounded[i]) / m)
                    if abs(Double(c[i]) - exact[i]) > sumBound * m { anyRoundingVisible = true }
                }
                let what = "m \(t.m) n \(t.n) k \(t.k) transA \(t.transA) transB \(t.transB) acc \(t.accumulate) bias \(t.bias) weight \(t.weight)"
                XCTAssertLessThanOrEqual(worstExact, 2 * u + u * u + sumBound, what)
                XCTAssertLessThanOrEqual(worstRounded, sumBound, what)
                if t.k >= 16 { XCTAssertTrue(anyRoundingVisible, "no sign of bfloat16 operands: " + what) }
            }
        }
    }

    /// The emulated tile of every path gives the bits of the hardware instruction, on every case
    /// (values well above the subnormal range, where the instruction's flushing would differ).
    func testEmulatedTilesGiveTheHardwareInstructionsBits() throws {
        try XCTSkipUnless(Kernels.supports(.avx512bf16), "this CPU has no AVX512-BF16 to compare with")
        for t in Self.cases {
            let hardware = Kernels.using(.avx512bf16) { run(t, seed: 7).c }
            for path in Kernels.available where path != .avx512bf16 {
                let emulated = Kernels.using(path) { run(t, seed: 7).c }
                XCTAssertEqual(
                    emulated.map(\.bitPattern), hardware.map(\.bitPattern),
                    "\(path.rawValue) vs avx512bf16: m \(t.m) n \(t.n) k \(t.k)")
            }
        }
    }

    /// The tile's order of operations is the instruction's: per pair of k, the odd k's product
    /// is added first, each sum rounded. After the first pair the sum is 1; the second pair's
    /// products are 2⁻²⁴ (even k) and −1 (odd k). Odd first: 1 − 1 = 0, then 2⁻²⁴. Even first:
    /// 1 + 2⁻²⁴ rounds to 1 (a tie, to even), then 0.
    func testEachPairAddsTheOddProductFirst() {
        let a: [Float] = [1, 0, 1, 1]
        let b: [Float] = [1, 0, 0x1p-24, -1]
        Kernels.using(precision: .bf16) { forEachPath(body) }
        func body() {
            var c: Float = 0
            a.withUnsafeBufferPointer { ap in
                b.withUnsafeBufferPointer { bp in
                    Kernels.using(precision: .bf16) {
                        Gemm.multiply(
                            m: 1, n: 1, k: 4, a: .rowMajor(ap.baseAddress!, columns: 4), b: .rowMajor(bp.baseAddress!, columns: 1), c: &c, ldc: 1)
                    }
                }
            }
            XCTAssertEqual(c, 0x1p-24)
        }
    }

    /// Frozen weights held in bfloat16 (`--frozen-dtype bf16`) give, in bf16, the bits of the same
    /// weights held as floats: rounding a bfloat16 value again changes nothing.
    func testWeightsHeldInBFloat16GiveTheSameBits() {
        let m = 9, n = 70, k = 41
        var rng = SeededRandom(seed: 11)
        let a = FloatBuffer((0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
        let w = FloatBuffer((0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
        let half = (0..<k * n).map { BFloat16(w[$0]) }
        let c = FloatBuffer(count: m * n)
        Kernels.using(precision: .bf16) {
            forEachPath {
                for transposed in [false, true] {
                    Gemm.multiply(
                        m: m, n: n, k: k, a: .rowMajor(a.pointer, columns: k),
                        b: transposed ? .transposed(w.pointer, columns: k) : .rowMajor(w.pointer, columns: n), c: c.pointer, ldc: n)
                    let floats = (0..<m * n).map { c[$0].bitPattern }
                    half.withUnsafeBufferPointer { h in
                        Gemm.multiply(
                            m: m, n: n, k: k, a: .rowMajor(a.pointer, columns: k),
                            b: transposed ? .transposed(h.baseAddress!, columns: k) : .rowMajor(h.baseAddress!, columns: n), c: c.pointer, ldc: n,
                            weight: true)
                        Gemm.weightsChanged(UnsafeMutableRawPointer(mutating: h.baseAddress!).assumingMemoryBound(to: Float.self), count: k * n / 2)
                    }
                    XCTAssertEqual((0..<m * n).map { c[$0].bitPattern }, floats, "transposed \(transposed)")
                }
            }
        }
    }

    /// A weight is packed once and reused; a reported change (an optimizer step) or a rewrite
    /// its samples catch is seen by the next product.
    func testPackedWeightsAreReusedUntilTheWeightsChange() {
        let m = 20, n = 40, k = 36
        var rng = SeededRandom(seed: 3)
        let a = FloatBuffer((0..<m * k).map { _ in rng.uniformFloat() - 0.5 })
        let w = FloatBuffer((0..<k * n).map { _ in rng.uniformFloat() - 0.5 })
        let c = FloatBuffer(count: m * n)
        func product() -> [Float] {
            Kernels.using(precision: .bf16) {
                Gemm.multiply(
                    m: m, n: n, k: k, a: .rowMajor(a.pointer, columns: k), b: .rowMajor(w.pointer, columns: n), c: c.pointer, ldc: n, weight: true)
            }
            return (0..<m * n).map { c[$0] }
        }
        func fresh() -> [Float] {
            Kernels.using(precision: .bf16) {
                Gemm.multiply(m: m, n: n, k: k, a: .rowMajor(a.pointer, columns: k), b: .rowMajor(w.pointer, columns: n), c: c.pointer, ldc: n)
            }
            return (0..<m * n).map { c[$0] }
        }
        defer { Gemm.weightsChanged(w.pointer, count: w.count) }
        let before = PackedWeights.shared.count
        let first = product()
        XCTAssertEqual(PackedWeights.shared.count, before + 1)
        XCTAssertEqual(product(), first)
        XCTAssertEqual(PackedWeights.shared.count, before + 1, "the packed weight is reused")
        XCTAssertEqual(first, fresh(), "packed once or per product, the same bits")
        // One element changed and reported, as AdamW does: the next product sees it.
        w[5 * n + 7] += 0.25
        Gemm.weightsChanged(w.pointer, count: w.count)
        let reported = product()
        XCTAssertEqual(reported, fresh())
        XCTAssertNotEqual(reported, first)
        // Every element changed without a report: the samples catch it.
        for i in 0..<w.count { w[i] *= -1 }
        XCTAssertEqual(product(), fresh())
    }
}
