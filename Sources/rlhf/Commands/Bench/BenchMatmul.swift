import Foundation
import TransformerCore

/// `rlhf bench --only matmul`: GFLOPS of the core's matrix product.
extension BenchCommand {
    /// The default `--shapes`, M×K×N.
    static let matmulShapes = [(1024, 768, 2304), (1024, 768, 3072), (1024, 3072, 768), (2048, 384, 1536), (8, 768, 50257)]

    /// The matmul rows in the precision in use: GFLOPS at each shape and their share of that
    /// precision's peak (for products of at most 16 rows also the rate B is read at).
    static func reportMatmul(
        _ out: BenchOutput, _ peak: PeakReference, shapes: [(Int, Int, Int)], repeats repeatCount: Int?, cold: Bool, transposedA: Bool,
        transposedB: Bool
    ) {
        for (m, k, n) in shapes {
            let gflops = benchMatmul(m: m, k: k, n: n, repeats: repeatCount, cold: cold, transposed: transposedB, transposedA: transposedA)
            let gbps = gflops / Double(2 * m) * 4 // bytes of B streamed per second, in GB/s
            let share = peakShare(gflops, peak)
            out.emit(
                [
                    "what": "matmul", "impl": "rlhf", "m": m, "k": k, "n": n, "gflops": round2(gflops), "cold": cold,
                    "b_transposed": transposedB, "a_transposed": transposedA, "b_gb_per_s": round2(gbps),
                ].merging(share.fields) { $1 },
                text: "matmul  \(m)×\(k)×\(n)\(cold ? " cold" : "")\(transposedA ? " Aᵀ" : "")\(transposedB ? " Bᵀ" : "")\(precisionTag)".column(28)
                    + "\(fmt(gflops)) GFLOPS, \(share.text)" + (m <= 16 ? " (B read at \(fmt(gbps)) GB/s)" : ""))
        }
    }

    static func benchMatmul(m: Int, k: Int, n: Int, repeats: Int?, cold: Bool = false, transposed: Bool = false, transposedA: Bool = false) -> Double
    {
        // Cold: rotate through copies of B that together exceed the last-level cache many times
        // over, so B comes from memory as a model's weights do when decoding.
        let copies = cold ? max(1, (256 << 20) / (k * n * 4)) : 1
        let a = FloatBuffer(count: m * k), c = FloatBuffer(count: m * n)
        let bs = (0..<copies).map { _ in FloatBuffer(count: k * n) }
        var rng = SeededRandom(seed: 7)
        for i in 0..<a.count { a[i] = rng.uniformFloat() - 0.5 }
        for b in bs { for i in 0..<b.count { b[i] = rng.uniformFloat() - 0.5 } }
        var which = 0
        let run = {
            let b = bs[which]
            which = (which + 1) % copies
            // B as a weight, as the model's products use one: in bf16 it is packed once (on the
            // untimed first run) and kept, as it is for an optimizer step's products.
            Gemm.multiply(
                m: m, n: n, k: k, a: transposedA ? .transposed(a.pointer, columns: m) : .rowMajor(a.pointer, columns: k),
                b: transposed ? .transposed(b.pointer, columns: k) : .rowMajor(b.pointer, columns: n), c: c.pointer, ldc: n, weight: true)
        }
        if Kernels.precision == .bf16 { for _ in 1..<copies { run() } } // every copy packed before timing
        let seconds = timeBest(repeats: repeats, minimumTime: 0.3, run)
        return 2.0 * Double(m) * Double(n) * Double(k) / seconds / 1e9
    }
}
