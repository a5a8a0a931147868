#if arch(x86_64)
import KernelBodies

/// AVX2 with FMA (x86-64-v3): 8-float ymm vectors. Sixteen registers hold a 6 × 16 GEMM tile
/// (12 accumulators, two B vectors, a broadcast) and a 4 × 24 decode tile.
public enum AVX2: KernelISA {
    public typealias V = SIMD8<Float>
    public typealias U = SIMD8<UInt32>
    public typealias H = SIMD8<UInt16>
    public typealias D = SIMD8<Double>
    public static var name: String { "avx2" }
    public static var fused: Bool { true }
    public static var gemmMR: Int { 6 }
    public static var decodeVectors: Int { 3 }

    @inline(__always) public static func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: a .< b) }
    @inline(__always) public static func clamp(_ x: V, _ lo: V, _ hi: V) -> V {
        x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
    }
    @inline(__always) public static func zeroWhereLess(_ x: V, _ probe: V, _ bound: V) -> V {
        x.replacing(with: 0, where: probe .< bound)
    }
    @inline(__always) public static func pairWords(_ lo: U, _ hi: U) -> U {
        U(lowHalf: lo.evenHalf | (lo.oddHalf &<< 16), highHalf: hi.evenHalf | (hi.oddHalf &<< 16))
    }
    @inline(__always) public static func widen(_ h: H) -> U {
        // lane by lane (the standard conversion is not inlined); the optimiser makes it one zero-extension
        var u = U()
        for i in 0..<U.scalarCount { u[i] = UInt32(h[i]) }
        return u
    }
}

/// The AVX2 kernels. Use them only where the CPU reports x86-64-v3.
public let avx2Kernels = KernelTable.make(AVX2.self)
#endif
