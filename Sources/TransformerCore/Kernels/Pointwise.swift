import Foundation

// GELU (tanh approximation, as GPT-2), residual adds and bias gradients.

private let geluScale: Float = 0.7978845608028654 // sqrt(2/π)

/// out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))), over n elements.
func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ n: Int) {
    Parallel.forRanges(n / 16 + 1, cost: n, minCostPerThread: 1 << 16) { chunks in
        let lo = chunks.lowerBound * 16, hi = min(n, chunks.upperBound * 16)
        var i = lo
        while i + 16 <= hi {
            let x = vload(inp + i)
            let u = F16(repeating: geluScale) * x.addingProduct(F16(repeating: 0.044715) * x * x, x)
            vstore(F16(repeating: 0.5) * x * (1 + vtanh(u)), out + i)
            i += 16
        }
        while i < hi {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanhf(geluScale * (x + 0.044715 * x * x * x)))
            i += 1
        }
    }
}

/// dinp = gelu'(inp)·dout, over n elements (dinp may alias dout).
func geluBackward(_ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>, _ n: Int) {
    Parallel.forRanges(n / 16 + 1, cost: n, minCostPerThread: 1 << 16) { chunks in
        let lo = chunks.lowerBound * 16, hi = min(n, chunks.upperBound * 16)
        var i = lo
        while i + 16 <= hi {
            let x = vload(inp + i)
            let x2 = x * x
            let u = F16(repeating: geluScale) * x.addingProduct(F16(repeating: 0.044715) * x2, x)
            let th = vtanh(u)
            let sech2 = 1 - th * th
            let du = F16(repeating: geluScale) * (1 + F16(repeating: 3 * 0.044715) * x2)
            let g = F16(repeating: 0.5) * (1 + th) + F16(repeating: 0.5) * x * sech2 * du
            vstore(g * vload(dout + i), dinp + i)
            i += 16
        }
        while i < hi {
            let x = inp[i]
            let u = geluScale * (x + 0.044715 * x * x * x)
            let th = tanhf(u)
            let g = 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * geluScale * (1 + 3 * 0.044715 * x * x)
            dinp[i] = g * dout[i]
            i += 1
        }
    }
}

/// tanh for SIMD16 lanes through exp: tanh(u) = 1 - 2/(e^{2u} + 1); saturates cleanly.
@inline(__always) func vtanh(_ u: F16) -> F16 {
    let e = vexp(2 * u)
    return 1 - 2 / (e + 1)
}

/// out = a + b, over n elements.
func residualForward(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { vstore(vload(a + i) + vload(b + i), out + i); i += 16 }
    while i < n { out[i] = a[i] + b[i]; i += 1 }
}

/// dbias (OC) += column sums of dout (N,OC).
func biasBackward(_ dbias: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ n: Int, _ oc: Int) {
    let chunks = max(1, oc / 64)
    Parallel.forEach(chunks, cost: n * oc, minCostPerThread: 1 << 16) { chunk in
        let lo = oc * chunk / chunks, hi = oc * (chunk + 1) / chunks
        for i in 0..<n { addInPlace(dout + i * oc + lo, dbias + lo, hi - lo) }
    }
}
