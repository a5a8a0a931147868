import Foundation

// Causal multi-head self-attention with a key-padding mask.
//
// Query t of sequence b may attend to key s when s ≤ t and s is a real token (mask 1). A padding
// query attends only to itself, so its row stays finite; real queries never see padding.
// Per (b, h) the keys are first transposed to (hs, T) so scores for one query are an axpy over
// key positions: no horizontal sums in the inner loop.

/// Per-worker scratch for the attention kernels.
final class AttentionScratch {
    nonisolated(unsafe) static var perWorker: [Scratch] = []
    static func get(_ worker: Int) -> Scratch {
        while perWorker.count <= worker { perWorker.append(Scratch()) }
        return perWorker[worker]
    }
    static func ensure(_ workers: Int) { _ = get(max(0, workers - 1)) }
}

@inline(__always) func keyAllowed(_ mask: UnsafePointer<UInt8>, _ s: Int, _ t: Int) -> Bool {
    s == t || mask[s] != 0
}

/// Softmax over row[0...t] in place, with disallowed keys set to probability 0, and row[t+1..<T] = 0.
@inline(__always) func maskedSoftmaxRow(_ row: UnsafeMutablePointer<Float>, _ mask: UnsafePointer<UInt8>, _ t: Int, _ tMax: Int) {
    for s in 0...t where !keyAllowed(mask, s, t) { row[s] = -.infinity }
    let m = maxElement(row, t + 1)
    let sum = expShiftSum(row, m, row, t + 1)
    scaleInPlace(1 / sum, row, t + 1)
    if t + 1 < tMax { (row + t + 1).update(repeating: 0, count: tMax - t - 1) }
}

/// out (B,T,C), att (B,NH,T,T) ← qkv (B,T,3C), mask (B,T).
func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>, _ qkv: UnsafePointer<Float>,
                      _ mask: UnsafePointer<UInt8>, _ b: Int, _ t: Int, _ c: Int, _ nh: Int) {
    let hs = c / nh, c3 = 3 * c
    let scale = 1 / Float(hs).squareRoot()
    AttentionScratch.ensure(Parallel.threadCount)
    Parallel.forEachTask(b * nh, threads: b * t * t * hs >= (1 << 15) ? Parallel.threadCount : 1) { task, worker in
        let bi = task / nh, h = task % nh
        let kt = AttentionScratch.get(worker).floats(hs * t)
        let base = qkv + bi * t * c3
        let m = mask + bi * t
        for s in 0..<t { let k = base + s * c3 + c + h * hs; for d in 0..<hs { kt[d * t + s] = k[d] } }
        for ti in 0..<t {
            let q = base + ti * c3 + h * hs
            let row = att + ((bi * nh + h) * t + ti) * t
            row.update(repeating: 0, count: ti + 1)
            for d in 0..<hs { axpy(q[d] * scale, kt + d * t, row, ti + 1) }
            maskedSoftmaxRow(row, m, ti, t)
            let o = out + (bi * t + ti) * c + h * hs
            o.update(repeating: 0, count: hs)
            for s in 0...ti where row[s] != 0 { axpy(row[s], base + s * c3 + 2 * c + h * hs, o, hs) }
        }
    }
}

/// dqkv (B,T,3C) ← gradients through attention given dout (B,T,C); dqkv is overwritten.
func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>,
                       _ att: UnsafePointer<Float>, _ b: Int, _ t: Int, _ c: Int, _ nh: Int) {
    let hs = c / nh, c3 = 3 * c
    let scale = 1 / Float(hs).squareRoot()
    dqkv.update(repeating: 0, count: b * t * c3)
    AttentionScratch.ensure(Parallel.threadCount)
    Parallel.forEachTask(b * nh, threads: b * t * t * hs >= (1 << 15) ? Parallel.threadCount : 1) { task, worker in
        let bi = task / nh, h = task % nh
        let scratch = AttentionScratch.get(worker).floats(hs * t + t)
        let vt = scratch, datt = scratch + hs * t
        let base = qkv + bi * t * c3, dbase = dqkv + bi * t * c3
        for s in 0..<t { let v = base + s * c3 + 2 * c + h * hs; for d in 0..<hs { vt[d * t + s] = v[d] } }
        for ti in 0..<t {
            let row = att + ((bi * nh + h) * t + ti) * t
            let dO = dout + (bi * t + ti) * c + h * hs
            // datt[s] = dout_t · v_s
            datt.update(repeating: 0, count: ti + 1)
            for d in 0..<hs { axpy(dO[d], vt + d * t, datt, ti + 1) }
            // softmax backward: dpre = att ⊙ (datt − Σ att·datt)
            let sum = dot(row, datt, ti + 1)
            let q = base + ti * c3 + h * hs
            let dq = dbase + ti * c3 + h * hs
            for s in 0...ti {
                let p = row[s]
                if p == 0 { continue }
                let dpre = p * (datt[s] - sum) * scale
                axpy(p, dO, dbase + s * c3 + 2 * c + h * hs, hs)       // dv_s += att·dout_t
                axpy(dpre, base + s * c3 + c + h * hs, dq, hs)         // dq_t += dpre·k_s
                axpy(dpre, q, dbase + s * c3 + c + h * hs, hs)         // dk_s += dpre·q_t
            }
        }
    }
}
