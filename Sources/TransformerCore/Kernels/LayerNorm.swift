// LayerNorm over the channel dimension; the rows run on the active kernel path.

/// out (N,C) = (inp - mean) * rstd * w + b; saves mean (N) and rstd (N) for the backward pass.
func layerNormForward(
    _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
    _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
    _ n: Int, _ c: Int, _ eps: Float
) {
    let k = Kernels.active
    Parallel.forRanges(n, cost: n * c, minCostPerThread: 1 << 15) { rows in
        k.layerNormRows(out, mean, rstd, inp, w, b, rows.lowerBound, rows.upperBound, c, eps)
    }
}

/// dinp (N,C) += LayerNorm'ᵀ dout; dw (C) += Σ dout·x̂; db (C) += Σ dout. The per-channel sums
/// are taken per worker into `partials` (threads × 2C floats) and then reduced.
func layerNormBackward(
    _ dinp: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>,
    _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
    _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ n: Int, _ c: Int,
    _ partials: Scratch
) {
    let k = Kernels.active
    let threads = n * c >= (1 << 16) ? min(Parallel.threadCount, n) : 1
    let part = partials.floats(threads * 2 * c)
    part.update(repeating: 0, count: threads * 2 * c)
    Parallel.forEachTask(threads, threads: threads) { t, _ in
        let pdw = part + t * 2 * c, pdb = pdw + c
        k.layerNormBackwardRows(dinp, pdw, pdb, dout, inp, w, mean, rstd, n * t / threads, n * (t + 1) / threads, c)
    }
    for t in 0..<threads {
        k.addInPlace(part + t * 2 * c, dw, c)
        k.addInPlace(part + t * 2 * c + c, db, c)
    }
}
