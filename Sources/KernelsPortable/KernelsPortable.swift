import KernelBodies

/// The portable path: 4-float vectors, which every 64-bit CPU Swift runs on has (SSE2 on x86-64,
/// NEON on arm64), with no instruction beyond the target's baseline.
///
/// On arm64 the 32 q registers hold a 12 × 8 GEMM tile (24 accumulators) and a 4 × 24 decode
/// tile, and NEON has fused multiply-add; on x86-64 the 16 xmm registers of SSE2 hold a 6 × 8
/// tile and a 4 × 8 decode tile, multiplying and adding separately.
public enum Portable: KernelISA {
    public typealias V = SIMD4<Float>
    public typealias U = SIMD4<UInt32>
    public typealias H = SIMD4<UInt16>
    public typealias D = SIMD4<Double>
    public static var name: String { "portable" }
    #if arch(arm64)
    public static var fused: Bool { true }
    public static var gemmMR: Int { 12 }
    public static var decodeVectors: Int { 6 }
    #else
    public static var fused: Bool { false }
    public static var gemmMR: Int { 6 }
    public static var decodeVectors: Int { 2 }
    #endif

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

/// The portable kernels, usable on any CPU.
public let portableKernels = KernelTable.make(Portable.self)
