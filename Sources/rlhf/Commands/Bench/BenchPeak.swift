import Foundation
import TransformerCore

/// `rlhf bench --only peak`: this CPU's arithmetic peak on every thread at once, and the peak the
/// matmul and train rows give their share of.
extension BenchCommand {
    /// The peak rows: fp32 FMAs on the active path's widest vectors, then, where the CPU has
    /// AVX512-BF16, bfloat16 dot products.
    static func reportPeak(_ out: BenchOutput, _ peak: PeakReference) {
        let width = PeakLoops.fp32Width(Kernels.activePath), threads = Parallel.threadCount
        let onThreads = threads == 1 ? "1 thread" : "\(threads) threads"
        let fp32 = peak.fp32
        out.emit(
            ["what": "peak", "precision": Precision.f32.rawValue, "width": width, "threads": threads, "gflops": round2(fp32)],
            text: "peak    f32  \(width)-wide FMA".column(28) + "\(fmt(fp32)) GFLOPS (\(onThreads))")
        if let bf16 = peak.bf16 {
            out.emit(
                ["what": "peak", "precision": Precision.bf16.rawValue, "width": 32, "threads": threads, "gflops": round2(bf16)],
                text: "peak    bf16 vdpbf16ps".column(28) + "\(fmt(bf16)) GFLOPS (\(onThreads))")
        }
    }

    /// The figures a matmul or train row at `gflops` adds: its share of the peak of the precision
    /// in use, as JSON fields and as text.
    static func peakShare(_ gflops: Double, _ peak: PeakReference) -> (fields: [String: Any], text: String) {
        let reference = peak.reference(for: Kernels.precision)
        let share = gflops / reference
        return (["peak_gflops": round2(reference), "peak_share": round3(share)], String(format: "%.0f%% of peak", share * 100))
    }
}

/// This CPU's arithmetic peak in GFLOPS, each kind measured once per run on first use: every
/// thread of `Parallel.threadCount` runs 12 independent chains for a number of rounds calibrated
/// on one thread to take about 80 ms, all at once; the figure is the flops of all threads over the
/// wall time, the better of two runs.
final class PeakReference {
    private var fp32Measured: Double?
    private var bf16Measured: Double??

    /// fp32 fused multiply-adds on the active path's widest vectors.
    var fp32: Double {
        if let p = fp32Measured { return p }
        let path = Kernels.activePath
        let p = Self.measure(flopsPerRound: PeakLoops.fp32FlopsPerRound(width: PeakLoops.fp32Width(path))) { PeakLoops.fp32(path, rounds: $0) }
        fp32Measured = p
        return p
    }

    /// bfloat16 dot products (`vdpbf16ps`), nil where the CPU lacks them.
    var bf16: Double? {
        if let p = bf16Measured { return p }
        let p = Kernels.hasAVX512BF16 ? Self.measure(flopsPerRound: PeakLoops.bf16FlopsPerRound) { PeakLoops.bf16(rounds: $0) } : nil
        bf16Measured = .some(p)
        return p
    }

    /// The peak of `precision` on the active path: the bfloat16 one where bf16 products run on
    /// the hardware instruction, the fp32 one otherwise (emulated bf16 products are fp32 FMAs).
    func reference(for precision: Precision) -> Double {
        if precision == .bf16 && Kernels.activePath == .avx512bf16, let p = bf16 { return p }
        return fp32
    }

    /// GFLOPS of `loop(rounds)` on every thread at once.
    static func measure(flopsPerRound: Int, _ loop: (Int) -> Void) -> Double {
        func seconds(_ body: () -> Void) -> Double {
            let t0 = DispatchTime.now().uptimeNanoseconds
            body()
            return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
        }
        // Calibrate on this thread: grow the rounds until they take 10 ms, then scale to 80 ms.
        var rounds = 1 << 12
        while true {
            let t = seconds { loop(rounds) }
            if t >= 0.01 || rounds >= 1 << 34 {
                rounds = max(1, Int(Double(rounds) * 0.08 / max(t, 1e-9)))
                break
            }
            rounds *= 4
        }
        let threads = Parallel.threadCount
        var best = 0.0
        for _ in 0..<2 {
            let t = seconds { Parallel.forEach(threads) { _ in loop(rounds) } }
            best = max(best, Double(threads) * Double(rounds) * Double(flopsPerRound) / t / 1e9)
        }
        return best
    }
}
