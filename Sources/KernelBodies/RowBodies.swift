#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Per-row and elementwise bodies: LayerNorm, GELU, the softmax rows of the logit heads, AdamW.

extension Body {
    /// LayerNorm of rows lo..<hi: out (N,C) = (inp − mean)·rstd·w + b; saves mean and rstd.
    @inlinable @inline(__always)
    public static func layerNormRows(
        _ out: UnsafeMutablePointer<Float>, _ mean: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
        _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
        _ lo: Int, _ hi: Int, _ c: Int, _ eps: Float
    ) {
        let l = lanes
        for i in lo..<hi {
            let x = inp + i * c, o = out + i * c
            var s = V(), j = 0
            while j + l <= c { s += load(x + j); j += l }
            var sum = hsum(s)
            while j < c { sum += x[j]; j += 1 }
            let m = sum / Float(c)
            let mv = splat(m)
            var v = V(); j = 0
            while j + l <= c { let d = load(x + j) - mv; v = madd(v, d, d); j += l }
            var vs = hsum(v)
            while j < c { let d = x[j] - m; vs += d * d; j += 1 }
            let r = 1 / (vs / Float(c) + eps).squareRoot()
            let rv = splat(r)
            j = 0
            while j + l <= c { store((load(x + j) - mv) * rv * load(w + j) + load(b + j), o + j); j += l }
            while j < c { o[j] = (x[j] - m) * r * w[j] + b[j]; j += 1 }
            mean[i] = m; rstd[i] = r
        }
    }

    /// LayerNorm backward for rows lo..<hi: dinp += LayerNorm'ᵀ dout, and the per-channel sums
    /// pdw (C) += Σ dout·x̂, pdb (C) += Σ dout.
    @inlinable @inline(__always)
    public static func layerNormBackwardRows(
        _ dinp: UnsafeMutablePointer<Float>, _ pdw: UnsafeMutablePointer<Float>, _ pdb: UnsafeMutablePointer<Float>,
        _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ mean: UnsafePointer<Float>, _ rstd: UnsafePointer<Float>, _ lo: Int, _ hi: Int, _ c: Int
    ) {
        let l = lanes
        for i in lo..<hi {
            let x = inp + i * c, d = dout + i * c, dx = dinp + i * c
            let mv = splat(mean[i]), rv = splat(rstd[i])
            // two reductions: mean(dnorm) and mean(dnorm·x̂), with dnorm = w·dout
            var a1 = V(), a2 = V(), j = 0
            while j + l <= c {
                let xh = (load(x + j) - mv) * rv
                let dn = load(w + j) * load(d + j)
                a1 += dn; a2 = madd(a2, dn, xh); j += l
            }
            var s1 = hsum(a1), s2 = hsum(a2)
            let m = mean[i], r = rstd[i]
            while j < c { let xh = (x[j] - m) * r; let dn = w[j] * d[j]; s1 += dn; s2 += dn * xh; j += 1 }
            s1 /= Float(c); s2 /= Float(c)
            let s1v = splat(s1), s2v = splat(s2)
            j = 0
            while j + l <= c {
                let xh = (load(x + j) - mv) * rv
                let dv = load(d + j)
                store(load(pdb + j) + dv, pdb + j)
                store(madd(load(pdw + j), dv, xh), pdw + j)
                let dn = load(w + j) * dv
                store(load(dx + j) + (dn - s1v - xh * s2v) * rv, dx + j)
                j += l
            }
            while j < c {
                let xh = (x[j] - m) * r
                pdb[j] += d[j]; pdw[j] += d[j] * xh
                dx[j] += (w[j] * d[j] - s1 - xh * s2) * r
                j += 1
            }
        }
    }

    /// out = 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) for elements lo..<hi.
    @inlinable @inline(__always)
    public static func geluForward(_ out: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ lo: Int, _ hi: Int) {
        let l = lanes
        let geluScale: Float = 0.7978845608028654 // sqrt(2/π); a local, since a global costs a lazy-init check per use
        var i = lo
        while i + l <= hi {
            let x = load(inp + i)
            let u = splat(geluScale) * madd(x, splat(0.044715) * x * x, x)
            store(splat(0.5) * x * (1 + tanh(u)), out + i)
            i += l
        }
        while i < hi {
            let x = inp[i]
            out[i] = 0.5 * x * (1 + tanhf(geluScale * (x + 0.044715 * x * x * x)))
            i += 1
        }
    }

    /// dinp = gelu'(inp)·dout for elements lo..<hi (dinp may alias dout).
    @inlinable @inline(__always)
    public static func geluBackward(
        _ dinp: UnsafeMutablePointer<Float>, _ inp: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
        _ lo: Int, _ hi: Int
    ) {
        let l = lanes
        let geluScale: Float = 0.7978845608028654 // sqrt(2/π)
        var i = lo
        while i + l <= hi {
            let x = load(inp + i)
            let x2 = x * x
            let u = splat(geluScale) * madd(x, splat(0.044715) * x2, x)
            let th = tanh(u)
            let sech2 = 1 - th * th
            let du = splat(geluScale) * (1 + splat(3 * 0.044715) * x2)
            let g = splat(0.5) * (1 + th) + splat(0.5) * x * sech2 * du
            store(g * load(dout + i), dinp + i)
            i += l
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

    /// Softmax of row/τ into `probs`; returns (logsumexp(row/τ), Σ p·row/τ).
    @inlinable @inline(__always)
    public static func softmaxRow(_ row: UnsafePointer<Float>, _ v: Int, _ invTemp: Float, _ probs: UnsafeMutablePointer<Float>) -> (Float, Float) {
        let l = lanes
        let m = maxElement(row, v) * invTemp
        var sum: Float = 0
        var acc = V()
        let iv = splat(invTemp), mv = splat(m)
        var j = 0
        while j + l <= v {
            let e = exp(load(row + j) * iv - mv)
            store(e, probs + j); acc += e; j += l
        }
        sum = hsum(acc)
        while j < v { let e = expf(row[j] * invTemp - m); probs[j] = e; sum += e; j += 1 }
        let inv = 1 / sum
        var pz = V(); j = 0
        while j + l <= v {
            let pj = load(probs + j) * inv
            store(pj, probs + j); pz = madd(pz, pj, load(row + j)); j += l
        }
        var pzs = hsum(pz)
        while j < v { probs[j] *= inv; pzs += probs[j] * row[j]; j += 1 }
        return (m + logf(sum), pzs * invTemp)
    }

    /// drow[j] = −gl·p_j/τ − ge·p_j·(log p_j + H)/τ with log p_j = row_j/τ − lse, from the
    /// probabilities of `softmaxRow`.
    @inlinable @inline(__always)
    public static func logitGradientRow(
        _ row: UnsafePointer<Float>, _ probs: UnsafePointer<Float>, _ drow: UnsafeMutablePointer<Float>,
        _ v: Int, _ invT: Float, _ lse: Float, _ h: Float, _ gl: Float, _ ge: Float
    ) {
        let l = lanes
        let a = splat(-gl * invT), geT = splat(-ge * invT)
        let shift = splat(h - lse), ivv = splat(invT)
        var j = 0
        if ge == 0 {
            while j + l <= v { store(a * load(probs + j), drow + j); j += l }
        } else {
            while j + l <= v {
                let pj = load(probs + j)
                let logpPlusH = load(row + j) * ivv + shift
                store(a * pj + geT * pj * logpPlusH, drow + j)
                j += l
            }
        }
        while j < v {
            let pj = probs[j]
            drow[j] = -gl * invT * pj - ge * invT * pj * (row[j] * invT - lse + h)
            j += 1
        }
    }

    /// One AdamW step over `count` parameters: m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g²,
    /// θ ← θ·keep − lrc·m / (√(v/bc2) + ε), with lrc = lr/(1−β1ᵗ) and keep = 1 − lr·λ.
    @inlinable @inline(__always)
    public static func adamw(
        _ pp: UnsafeMutablePointer<Float>, _ gp: UnsafePointer<Float>, _ mp: UnsafeMutablePointer<Float>,
        _ vp: UnsafeMutablePointer<Float>, _ count: Int, _ b1: Float, _ b2: Float, _ lrc: Float,
        _ bc2: Float, _ eps: Float, _ keep: Float
    ) {
        let l = lanes
        let b1v = splat(b1), b2v = splat(b2)
        let ob1 = splat(1 - b1), ob2 = splat(1 - b2)
        let lrcv = splat(lrc), ibc2 = splat(1 / bc2), epsv = splat(eps)
        let keepv = splat(keep)
        var i = 0
        while i + l <= count {
            let g = load(gp + i)
            let mi = b1v * load(mp + i) + ob1 * g
            let vi = b2v * load(vp + i) + ob2 * g * g
            store(mi, mp + i); store(vi, vp + i)
            let denom = (vi * ibc2).squareRoot() + epsv
            store(load(pp + i) * keepv - lrcv * mi / denom, pp + i)
            i += l
        }
        while i < count {
            let g = gp[i]
            mp[i] = b1 * mp[i] + (1 - b1) * g
            vp[i] = b2 * vp[i] + (1 - b2) * g * g
            let denom = (vp[i] / bc2).squareRoot() + eps
            pp[i] = pp[i] * keep - lrc * mp[i] / denom
            i += 1
        }
    }
}
