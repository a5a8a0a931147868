// Token + position embedding.

/// out (N,C) = wte[tokens] + wpe[positions]
func encoderForward(
    _ out: UnsafeMutablePointer<Float>, _ tokens: UnsafePointer<Int32>, _ positions: UnsafePointer<Int32>,
    _ wte: UnsafePointer<Float>, _ wpe: UnsafePointer<Float>, _ n: Int, _ c: Int
) {
    let k = Kernels.active
    for i in 0..<n {
        k.add(out + i * c, wte + Int(tokens[i]) * c, wpe + Int(positions[i]) * c, c)
    }
}

/// dwte[tokens] += dout, dwpe[positions] += dout. Split over channels, so two rows with the
/// same token never race.
func encoderBackward(
    _ dwte: UnsafeMutablePointer<Float>, _ dwpe: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>,
    _ tokens: UnsafePointer<Int32>, _ positions: UnsafePointer<Int32>, _ n: Int, _ c: Int
) {
    let chunks = max(1, c / 64)
    Parallel.forEach(chunks, cost: n * c, minCostPerThread: 1 << 16) { chunk in
        let lo = c * chunk / chunks, hi = c * (chunk + 1) / chunks
        for i in 0..<n {
            let d = dout + i * c + lo
            addInPlace(d, dwte + Int(tokens[i]) * c + lo, hi - lo)
            addInPlace(d, dwpe + Int(positions[i]) * c + lo, hi - lo)
        }
    }
}
