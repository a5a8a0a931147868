#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// One instruction set's vector types and tile shapes. A kernel target defines one conforming
/// type and builds its `KernelTable` from the generic bodies in `Body`, which its own compiler
/// flags then turn into that instruction set's code.
///
/// The conforming type must be declared in the kernel target itself: every specialisation of a
/// body is then named after it, so two targets never emit a function under the same name (the
/// linker would keep one copy, and a CPU lacking the other's instructions would run it).
public protocol KernelISA {
    /// The float vector the kernels work in: 16 lanes on AVX-512, 8 on AVX2, 4 on SSE and NEON.
    associatedtype V: SIMD where V.Scalar == Float
    /// Unsigned integers with V's lane count (exp's bit manipulation).
    associatedtype U: SIMD where U.Scalar == UInt32
    /// 16-bit unsigned integers with V's lane count (bfloat16 weights, widened on load).
    associatedtype H: SIMD where H.Scalar == UInt16
    /// Doubles with V's lane count (the gradient norm's sum of squares).
    associatedtype D: SIMD where D.Scalar == Double
    /// Name of the path, as `RLHF_ISA` spells it.
    static var name: String { get }
    /// Whether the target has fused multiply-add. Without it `addingProduct` is a call to `fmaf`
    /// per lane, so the bodies multiply and add instead.
    static var fused: Bool { get }
    /// Rows of the GEMM micro-tile (4, 6, 8 or 12); it is two vectors wide.
    static var gemmMR: Int { get }
    /// Vectors per row of the 4-row decode tile (2, 3, 4 or 6).
    static var decodeVectors: Int { get }

    // Comparisons and selects, which each target writes on its concrete vector type: through
    // the generic `SIMD` protocol they compile to a loop over the lanes.

    /// Lane-wise maximum for inputs without NaN (a select; the standard `pointwiseMax` follows
    /// IEEE maximum's NaN rules).
    static func vmax(_ a: V, _ b: V) -> V
    /// x clamped to [lo, hi] with selects; a NaN lane stays NaN.
    static func clamp(_ x: V, _ lo: V, _ hi: V) -> V
    /// x with 0 in the lanes where probe < bound.
    static func zeroWhereLess(_ x: V, _ probe: V, _ bound: V) -> V
    /// Each lane zero-extended to 32 bits.
    static func widen(_ h: H) -> U
    /// Adjacent lanes' low 16 bits paired into one word (lane 2j low, 2j+1 high): the pairs of
    /// `lo` in the first half of the result, those of `hi` in the second.
    static func pairWords(_ lo: U, _ hi: U) -> U
}

/// How a micro-kernel combines its product with C.
public enum TileMode { case overwrite, accumulate, bias }

/// Row k (16 floats) is 0 in lanes ≤ k and −∞ after: the causal mask of the vector that holds
/// query k (mod the lane count). A path with fewer lanes reads the first lanes of row k.
public let causalChunkMask: UnsafePointer<Float> = {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: 256)
    for k in 0..<16 { for l in 0..<16 { p[k * 16 + l] = l <= k ? 0 : -.infinity } }
    return UnsafePointer(p)
}()

/// The generic kernel bodies, specialised per instruction set by the kernel targets. Every
/// member is inlined into the entry points that a target builds (the small helpers below are
/// `@_transparent`, which inlines even where the optimiser would not), so no body is ever
/// emitted as a function of its own that two targets could share.
public enum Body<I: KernelISA> {
    public typealias V = I.V

    /// Lanes per vector.
    @_transparent public static var lanes: Int { V.scalarCount }
    /// Bytes per vector.
    @_transparent public static var vbytes: Int { V.scalarCount * 4 }

    @_transparent public static func load(_ p: UnsafePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }
    @_transparent public static func load(_ p: UnsafeMutablePointer<Float>) -> V {
        UnsafeRawPointer(p).loadUnaligned(as: V.self)
    }
    @_transparent public static func load(_ p: UnsafeRawPointer, _ byteOffset: Int) -> V {
        p.loadUnaligned(fromByteOffset: byteOffset, as: V.self)
    }
    @_transparent public static func store(_ v: V, _ p: UnsafeMutablePointer<Float>) {
        UnsafeMutableRawPointer(p).storeBytes(of: v, as: V.self)
    }
    @_transparent public static func store(_ v: V, _ p: UnsafeMutableRawPointer, _ byteOffset: Int) {
        p.storeBytes(of: v, toByteOffset: byteOffset, as: V.self)
    }
    @_transparent public static func splat(_ x: Float) -> V { V(repeating: x) }

    /// acc + a·b: one fused multiply-add per lane where the target has FMA.
    @_transparent public static func madd(_ acc: V, _ a: V, _ b: V) -> V {
        I.fused ? acc.addingProduct(a, b) : acc + a * b
    }

    /// Sum of the lanes in lane order.
    @_transparent public static func hsum(_ v: V) -> Float {
        var s = v[0]
        for i in 1..<V.scalarCount { s += v[i] }
        return s
    }

    /// Lane-wise maximum for inputs without NaN.
    @_transparent public static func vmax(_ a: V, _ b: V) -> V { I.vmax(a, b) }

    /// Largest lane of a vector without NaN.
    @_transparent public static func hmax(_ v: V) -> Float {
        var m = v[0]
        for i in 1..<V.scalarCount where m < v[i] { m = v[i] }
        return m
    }

    /// exp per lane: range reduction to 2^k·e^r, |r| ≤ ln2/2, and a degree-6 polynomial;
    /// relative error about 2e-7 for x in [-87, 88]. Inputs below -87 give 0, NaN stays NaN.
    @_transparent public static func exp(_ x: V) -> V {
        let log2e: Float = 1.442695040888963
        // clamped with selects (NaN stays NaN)
        let xc = I.clamp(x, splat(-87.3), splat(88.3))
        // k = round(x·log2e) by adding 1.5·2²³: the integer lands in the low mantissa bits,
        // which avoids a float→int vector conversion
        let magic = splat(12_582_912)
        let t = madd(magic, xc, splat(log2e))
        let k = t - magic
        // r = x - k·ln2, with ln2 split in two for accuracy
        var r = madd(xc, k, splat(-0.693145751953125))
        r = madd(r, k, splat(-1.428606765330187e-06))
        var p = splat(1.0 / 720.0)
        p = madd(splat(1.0 / 120.0), p, r)
        p = madd(splat(1.0 / 24.0), p, r)
        p = madd(splat(1.0 / 6.0), p, r)
        p = madd(splat(0.5), p, r)
        p = madd(splat(1.0), p, r)
        p = madd(splat(1.0), p, r)
        let bits = unsafeBitCast(t, to: I.U.self) &- I.U(repeating: 0x4B40_0000) // k as an integer
        let scale = unsafeBitCast((bits &+ I.U(repeating: 127)) &<< I.U(repeating: 23), to: V.self) // 2^k
        return I.zeroWhereLess(p * scale, x, splat(-87.0))
    }

    /// tanh per lane through exp: tanh(u) = 1 − 2/(e^{2u} + 1); saturates cleanly.
    @_transparent public static func tanh(_ u: V) -> V {
        let e = exp(2 * u)
        return 1 - 2 / (e + 1)
    }
}
