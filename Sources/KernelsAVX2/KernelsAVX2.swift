#if arch(x86_64)
import KernelBodies

/// AVX2 with FMA (x86-64-v3): 8-float ymm vectors. Sixteen registers hold a 6 × 16 GEMM tile
/// (12 accumulators, two B vectors, a broadcast) and a 4 × 24 decode tile.
public enum AVX2: KernelISA {
    public typealias V = SIMD8<Float>
    public typealias U = SIMD8<UInt32>
    public typealias D = SIMD8<Double>
    public static var name: String { "avx2" }
    public static var fused: Bool { true }
    public static var gemmMR: Int { 6 }
    public static var decodeVectors: Int { 3 }
}

/// The AVX2 kernels. Use them only where the CPU reports x86-64-v3.
public let avx2Kernels = KernelTable.make(AVX2.self)
#endif
