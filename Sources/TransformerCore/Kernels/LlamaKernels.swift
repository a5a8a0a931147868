import Foundation

// The Llama family's layers: RMSNorm and SwiGLU (rows on the active kernel path), rotary
// position embeddings, and the token embedding without learned positions.

/// out (N,C) = inp·rstd·w; saves rstd (N) for the backward pass.
func rmsNormForward(
    _ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ n: Int, _ c: Int, _ eps: Float
) {
    let k = Kernels.active
    Parallel.forRanges(n, cost: n * c, minCostPerThread: 1 << 15) { rows in
        k.rmsNormRows(out, rstd, inp, w, rows.lowerBound, rows.upperBound, c, eps)
    }
}

/// dinp (N,C) += RMSNorm'ᵀ dout; dw (C) += Σ dout·x̂. The per-channel sums are taken per worker
/// into `partials` (threads × C floats) and then reduced.
func rmsNormBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>,
    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    _ rstd: UnsafePointer<Float>, _ n: Int, _ c: Int, _ partials: Scratch
) {
    let k = Kernels.active
    let threads = n * c >= (1 << 16) ? min(Parallel.threadCount, n) : 1
    let part = partials.floats(threads * c)
    part.update(repeating: 0, count: threads * c)
    Parallel.forEachTask(threads, threads: threads) { t, _ in
        k.rmsNormBackwardRows(dinp, part + t * c, dout, inp, w, rstd, n * t / threads, n * (t + 1) / threads, c)
    }
    for t in 0..<threads { k.addInPlace(part + t * c, dw, c) }
}

/// out (N,I) = silu(gate)·up from gu (N, 2I) holding gate|up per row.
func swigluForward(_ out: UnsafeMutablePointer<Float>, _ gu: UnsafePointer<Float>, _ n: Int, _ width: Int) {
    let k = Kernels.active
    Parallel.forRanges(n, cost: n * width, minCostPerThread: 1 << 15) { rows in
        k.swigluRows(out, gu, rows.lowerBound, rows.upperBound, width)
    }
}

/// dgu (N, 2I) = gradients of gate|up given dout (N, I); overwritten.
func swigluBackward(_ dgu: UnsafeMutablePointer<Float>, _ gu: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, _ n: Int, _ width: Int) {
    let k = Kernels.active
    Parallel.forRanges(n, cost: n * width, minCostPerThread: 1 << 15) { rows in
        k.swigluBackwardRows(dgu, gu, dout, rows.lowerBound, rows.upperBound, width)
    }
}

/// cos and sin of position·frequency for every position below `nCtx` and each of the
/// headDim/2 frequencies, laid out (nCtx, headDim/2).
///
/// As in transformers, the inverse frequencies and each angle are float32; the cosine and sine
/// of that angle are taken in double precision and rounded.
final class RotaryTable: @unchecked Sendable {
    let half: Int, positions: Int
    let cos: FloatBuffer, sin: FloatBuffer

    init(config: ModelConfig) {
        half = config.headDim / 2
        positions = config.nCtx
        cos = FloatBuffer(count: positions * half)
        sin = FloatBuffer(count: positions * half)
        let inv = config.ropeInverseFrequencies.map { Float($0) }
        for p in 0..<positions {
            for i in 0..<half {
                let angle = Double(Float(p) * inv[i])
                cos[p * half + i] = Float(Foundation.cos(angle))
                sin[p * half + i] = Float(Foundation.sin(angle))
            }
        }
    }

    /// Rotates `heads` consecutive heads of `2·half` floats at `x` to position `pos` (the
    /// rotate-half convention: element i pairs with i + half). `inverse` rotates back, which is
    /// the transpose, so it carries gradients through the rotation.
    @inline(__always)
    func rotate(_ x: UnsafeMutablePointer<Float>, heads: Int, pos: Int, inverse: Bool) {
        let c = cos.pointer + pos * half, s0 = sin.pointer + pos * half
        let sign: Float = inverse ? -1 : 1
        for h in 0..<heads {
            let a = x + h * 2 * half, b = a + half
            for i in 0..<half {
                let s = sign * s0[i], x1 = a[i], x2 = b[i]
                a[i] = x1 * c[i] - x2 * s
                b[i] = x2 * c[i] + x1 * s
            }
        }
    }

    /// Rotates the query and key heads of each of the `n` rows of a q|k|v buffer (row width
    /// `ld`), row i at position `positions[i]`.
    func apply(_ qkv: UnsafeMutablePointer<Float>, ld: Int, heads: Int, positions pos: UnsafePointer<Int32>, n: Int, inverse: Bool) {
        Parallel.forRanges(n, cost: n * heads * half * 6, minCostPerThread: 1 << 15) { rows in
            for r in rows { self.rotate(qkv + r * ld, heads: heads, pos: Int(pos[r]), inverse: inverse) }
        }
    }
}

/// out (N,C) = wte[tokens]
func embeddingForward(
    _ out: UnsafeMutablePointer<Float>, _ tokens: UnsafePointer<Int32>,
    _ wte: UnsafePointer<Float>, _ n: Int, _ c: Int
) {
    for i in 0..<n { copyFloats(out + i * c, wte + Int(tokens[i]) * c, c) }
}

/// dwte[tokens] += dout, split over channels so two rows with the same token never race.
func embeddingBackward(
    _ dwte: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
    _ tokens: UnsafePointer<Int32>, _ n: Int, _ c: Int
) {
    let chunks = max(1, c / 64)
    Parallel.forEach(chunks, cost: n * c, minCostPerThread: 1 << 16) { chunk in
        let lo = c * chunk / chunks, hi = c * (chunk + 1) / chunks
        for i in 0..<n { addInPlace(dout + i * c + lo, dwte + Int(tokens[i]) * c + lo, hi - lo) }
    }
}
