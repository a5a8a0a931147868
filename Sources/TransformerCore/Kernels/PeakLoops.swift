import KernelsBF16

/// The arithmetic peak loops of KernelsBF16, for `rlhf bench --only peak`: independent chains of
/// fused multiply-adds (or bfloat16 dot products) with nothing else in the loop, so a core runs
/// them at its peak rate.
public enum PeakLoops {
    /// The widest fp32 vectors of a path, in floats: 16 on the AVX-512 paths, 8 on AVX2, 4 on
    /// the portable one.
    public static func fp32Width(_ path: KernelPath) -> Int {
        switch path {
        case .avx512bf16, .avx512: return 16
        case .avx2: return 8
        case .portable: return 4
        }
    }

    /// The flops of one round of the fp32 loop on `width`-float vectors (12 chains, a multiply
    /// and an add per lane).
    public static func fp32FlopsPerRound(width: Int) -> Int { 24 * width }

    /// The flops of one round of the bfloat16 loop (12 chains of 16 lanes, 2 products and 2
    /// additions per lane).
    public static let bf16FlopsPerRound = 768

    /// Runs `rounds` rounds of the fp32 loop on `path`'s widest vectors, on the calling thread.
    public static func fp32(_ path: KernelPath, rounds: Int) {
        precondition(Kernels.supports(path), "the \(path.rawValue) loop needs \(path.requirement), which this CPU lacks")
        var sink = [Float](repeating: 0, count: 16)
        rlhf_fp32_peak_chains(Int32(fp32Width(path)), rounds, &sink)
    }

    /// Runs `rounds` rounds of the bfloat16 loop (`vdpbf16ps`) on the calling thread; only where
    /// `Kernels.hasAVX512BF16`.
    public static func bf16(rounds: Int) {
        precondition(Kernels.hasAVX512BF16, "the bfloat16 loop needs AVX512-BF16, which this CPU lacks")
        var sink = [Float](repeating: 0, count: 16)
        rlhf_bf16_peak_chains(rounds, &sink)
    }
}
