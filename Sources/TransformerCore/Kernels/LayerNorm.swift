// LayerNorm over the channel dimension.

/// out (N,C) = (inp - mean) * rstd * w + b; saves mean (N) and rstd (N) for the backward pass.
func layerNormForward(_ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
                      _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                      _ n: Int, _ c: Int, _ eps: Float) {
    Parallel.forRanges(n, cost: n * c, minCostPerThread: 1 << 15) { rows in
        for i in rows {
            let x = inp + i * c, o = out + i * c
            var s = F16(), j = 0
            while j + 16 <= c { s += vload(x + j); j += 16 }
            var sum = hsum(s)
            while j < c { sum += x[j]; j += 1 }
            let m = sum / Float(c)
            let mv = F16(repeating: m)
            var v = F16(); j = 0
            while j + 16 <= c { let d = vload(x + j) - mv; v = v.addingProduct(d, d); j += 16 }
            var vs = hsum(v)
            while j < c { let d = x[j] - m; vs += d * d; j += 1 }
            let r = 1 / (vs / Float(c) + eps).squareRoot()
            let rv = F16(repeating: r)
            j = 0
            while j + 16 <= c { vstore((vload(x + j) - mv) * rv * vload(w + j) + vload(b + j), o + j); j += 16 }
            while j < c { o[j] = (x[j] - m) * r * w[j] + b[j]; j += 1 }
            mean[i] = m; rstd[i] = r
        }
    }
}

/// dinp (N,C) += LayerNorm'ᵀ dout; dw (C) += Σ dout·x̂; db (C) += Σ dout. The per-channel sums
/// are taken per worker into `partials` (threads × 2C floats) and then reduced.
func layerNormBackward(_ dinp: UnsafeMutablePointer<Float>, _ dw: UnsafeMutablePointer<Float>, _ db: UnsafeMutablePointer<Float>,
                       _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
                       _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ n: Int, _ c: Int,
                       _ partials: Scratch) {
    let threads = n * c >= (1 << 16) ? min(Parallel.threadCount, n) : 1
    let part = partials.floats(threads * 2 * c)
    part.update(repeating: 0, count: threads * 2 * c)
    Parallel.forEachTask(threads, threads: threads) { t, _ in
        let pdw = part + t * 2 * c, pdb = pdw + c
        let lo = n * t / threads, hi = n * (t + 1) / threads
        for i in lo..<hi {
            let x = inp + i * c, d = dout + i * c, dx = dinp + i * c
            let mv = F16(repeating: mean[i]), rv = F16(repeating: rstd[i])
            // two reductions: mean(dnorm) and mean(dnorm·x̂), with dnorm = w·dout
            var a1 = F16(), a2 = F16(), j = 0
            while j + 16 <= c {
                let xh = (vload(x + j) - mv) * rv
                let dn = vload(w + j) * vload(d + j)
                a1 += dn; a2 = a2.addingProduct(dn, xh); j += 16
            }
            var s1 = hsum(a1), s2 = hsum(a2)
            let m = mean[i], r = rstd[i]
            while j < c { let xh = (x[j] - m) * r; let dn = w[j] * d[j]; s1 += dn; s2 += dn * xh; j += 1 }
            s1 /= Float(c); s2 /= Float(c)
            let s1v = F16(repeating: s1), s2v = F16(repeating: s2)
            j = 0
            while j + 16 <= c {
                let xh = (vload(x + j) - mv) * rv
                let dv = vload(d + j)
                vstore(vload(pdb + j) + dv, pdb + j)
                vstore(vload(pdw + j).addingProduct(dv, xh), pdw + j)
                let dn = vload(w + j) * dv
                vstore(vload(dx + j) + (dn - s1v - xh * s2v) * rv, dx + j)
                j += 16
            }
            while j < c {
                let xh = (x[j] - m) * r
                pdb[j] += d[j]; pdw[j] += d[j] * xh
                dx[j] += (w[j] * d[j] - s1 - xh * s2) * r
                j += 1
            }
        }
    }
    for t in 0..<threads {
        addInPlace(part + t * 2 * c, dw, c)
        addInPlace(part + t * 2 * c + c, db, c)
    }
}
