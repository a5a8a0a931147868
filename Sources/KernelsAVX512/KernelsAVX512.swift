#if arch(x86_64)
import KernelBodies

/// AVX-512 (x86-64-v4): 16-float zmm vectors, a 12 × 32 GEMM tile in 24 of the 32 registers and
/// a 4 × 96 decode tile.
public enum AVX512: KernelISA {
    public typealias V = SIMD16<Float>
    public typealias U = SIMD16<UInt32>
    public typealias H = SIMD16<UInt16>
    public typealias D = SIMD16<Double>
    public static var name: String { "avx512" }
    public static var fused: Bool { true }
    public static var gemmMR: Int { 12 }
    public static var decodeVectors: Int { 6 }

    @inline(__always) public static func vmax(_ a: V, _ b: V) -> V { a.replacing(with: b, where: a .< b) }
    @_transparent public static func clamp(_ x: V, _ lo: V, _ hi: V) -> V {
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

/// The AVX-512 kernels. Use them only where the CPU reports x86-64-v4.
public let avx512Kernels = KernelTable.make(AVX512.self)
#endif
