// GELU (tanh approximation, as GPT-2), residual adds and bias gradients, on the active kernel
// path.

/// out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), over n elements.
func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ n: Int) {
    let k = Kernels.active
    Parallel.forRanges(n / 16 + 1, cost: n, minCostPerThread: 1 << 16) { chunks in
        k.geluForward(out, inp, chunks.lowerBound * 16, min(n, chunks.upperBound * 16))
    }
}

/// dinp = gelu'(inp)·dout, over n elements (dinp may alias dout).
func geluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, _ n: Int) {
    let k = Kernels.active
    Parallel.forRanges(n / 16 + 1, cost: n, minCostPerThread: 1 << 16) { chunks in
        k.geluBackward(dinp, inp, dout, chunks.lowerBound * 16, min(n, chunks.upperBound * 16))
    }
}

/// out = a + b, over n elements.
func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    Kernels.active.add(out, a, b, n)
}

/// dbias (OC) += column sums of dout (N,OC).
func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ n: Int, _ oc: Int) {
    let k = Kernels.active
    let chunks = max(1, oc / 64)
    Parallel.forEach(chunks, cost: n * oc, minCostPerThread: 1 << 16) { chunk in
        let lo = oc * chunk / chunks, hi = oc * (chunk + 1) / chunks
        for i in 0..<n { k.addInPlace(dout + i * oc + lo, dbias + lo, hi - lo) }
    }
}
