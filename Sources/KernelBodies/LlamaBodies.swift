#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Per-row and elementwise bodies of the Llama family: RMSNorm and the SwiGLU gate.

extension Body {
    /// RMSNorm of rows lo..<hi: out (N,C) = inp·rstd·w with rstd = 1/√(mean(inp²) + eps); saves rstd.
    @inlinable @inline(__always)
    public static func rmsNormRows(
        _ out: UnsafeMutablePointer<Float>, _ rstd: UnsafeMutablePointer<Float>,
        _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ lo: Int, _ hi: Int, _ c: Int, _ eps: Float
    ) {
        let l = lanes
        for i in lo..<hi {
            let x = inp + i * c, o = out + i * c
            var s = V(), j = 0
            while j + l <= c { let v = load(x + j); s = madd(s, v, v); j += l }
            var ss = hsum(s)
            while j < c { ss += x[j] * x[j]; j += 1 }
            let r = 1 / (ss / Float(c) + eps).squareRoot()
            let rv = splat(r)
            j = 0
            while j + l <= c { store(load(x + j) * rv * load(w + j), o + j); j += l }
            while j < c { o[j] = x[j] * r * w[j]; j += 1 }
            rstd[i] = r
        }
    }

    /// RMSNorm backward for rows lo..<hi: dinp += rstd·(w·dout − x̂·mean(w·dout·x̂)) with
    /// x̂ = inp·rstd, and pdw (C) += Σ dout·x̂.
    @inlinable @inline(__always)
    public static func rmsNormBackwardRows(
        _ dinp: UnsafeMutablePointer<Float>, _ pdw: UnsafeMutablePointer<Float>,
        _ dout: UnsafePointer<Float>, _ inp: UnsafePointer<Float>, _ w: UnsafePointer<Float>,
        _ rstd: UnsafePointer<Float>, _ lo: Int, _ hi: Int, _ c: Int
    ) {
        let l = lanes
        for i in lo..<hi {
            let x = inp + i * c, d = dout + i * c, dx = dinp + i * c
            let r = rstd[i], rv = splat(r)
            var a = V(), j = 0
            while j + l <= c { a = madd(a, load(w + j) * load(d + j), load(x + j) * rv); j += l }
            var s = hsum(a)
            while j < c { s += w[j] * d[j] * x[j] * r; j += 1 }
            s /= Float(c)
            let sv = splat(s)
            j = 0
            while j + l <= c {
                let xh = load(x + j) * rv, dv = load(d + j)
                store(madd(load(pdw + j), dv, xh), pdw + j)
                store(load(dx + j) + (load(w + j) * dv - xh * sv) * rv, dx + j)
                j += l
            }
            while j < c {
                let xh = x[j] * r
                pdw[j] += d[j] * xh
                dx[j] += (w[j] * d[j] - xh * s) * r
                j += 1
            }
        }
    }

    /// SwiGLU of rows lo..<hi: out (N,I) = silu(gate)·up, with gate|up the two halves of each
    /// row of `gu` (N, 2I) and silu(g) = g/(1 + e^−g).
    @inlinable @inline(__always)
    public static func swigluRows(_ out: UnsafeMutablePointer<Float>, _ gu: UnsafePointer<Float>, _ lo: Int, _ hi: Int, _ width: Int) {
        let l = lanes
        for i in lo..<hi {
            let g = gu + i * 2 * width, u = g + width, o = out + i * width
            var j = 0
            while j + l <= width {
                let gv = load(g + j)
                store(gv / (1 + exp(V() - gv)) * load(u + j), o + j)
                j += l
            }
            while j < width { o[j] = g[j] / (1 + expf(-g[j])) * u[j]; j += 1 }
        }
    }

    /// SwiGLU backward for rows lo..<hi: dgu (N, 2I) = (dout·up·silu'(gate) | dout·silu(gate)),
    /// with silu'(g) = σ(g)·(1 + g·(1 − σ(g))).
    @inlinable @inline(__always)
    public static func swigluBackwardRows(
        _ dgu: UnsafeMutablePointer<Float>, _ gu: UnsafePointer<Float>, _ dout: UnsafePointer<Float>,
        _ lo: Int, _ hi: Int, _ width: Int
    ) {
        let l = lanes
        for i in lo..<hi {
            let g = gu + i * 2 * width, u = g + width, d = dout + i * width
            let dg = dgu + i * 2 * width, du = dg + width
            var j = 0
            while j + l <= width {
                let gv = load(g + j), dv = load(d + j)
                let sig = 1 / (1 + exp(V() - gv))
                store(dv * load(u + j) * sig * madd(splat(1), gv, 1 - sig), dg + j)
                store(dv * gv * sig, du + j)
                j += l
            }
            while j < width {
                let sig = 1 / (1 + expf(-g[j]))
                dg[j] = d[j] * u[j] * sig * (1 + g[j] * (1 - sig))
                du[j] = d[j] * g[j] * sig
                j += 1
            }
        }
    }
}
