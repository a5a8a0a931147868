// Attention inner loops. Buffers the drivers hand in are padded to whole 16-float blocks, which
// is a whole number of vectors on every path.

extension Body {
    /// A small register-tiled product: for r < rows (1…4),
    /// out[r·ldo + j] = Σ_{p<k} a[r·lda + p·aStep] · b[p·ldb + j] for j < cols rounded up to
    /// whole vectors. Each of B's k rows needs that many readable floats. Rows of A past `rows`
    /// are not read; rows of `out` past `rows` are not written. With `lda` 1 and `aStep` the row
    /// length, A is read as the transpose of a row-major matrix.
    @inlinable @inline(__always)
    public static func attentionTile(
        _ a: UnsafePointer<Float>, _ lda: Int, _ rows: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
        _ k: Int, _ cols: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int, _ aStep: Int
    ) {
        let l = lanes, vb = vbytes
        let chunks = (cols + l - 1) / l
        let a0 = a, a1 = a + Swift.min(1, rows - 1) * lda, a2 = a + Swift.min(2, rows - 1) * lda, a3 = a + Swift.min(3, rows - 1) * lda
        let rowBytes = ldb * 4
        var j = 0
        while j + 2 <= chunks {
            var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V()
            var bp = UnsafeRawPointer(b + j * l)
            for p in 0..<k {
                let b0 = load(bp, 0), b1 = load(bp, vb)
                var x = splat(a0[p * aStep]); c00 = madd(c00, x, b0); c01 = madd(c01, x, b1)
                x = splat(a1[p * aStep]); c10 = madd(c10, x, b0); c11 = madd(c11, x, b1)
                x = splat(a2[p * aStep]); c20 = madd(c20, x, b0); c21 = madd(c21, x, b1)
                x = splat(a3[p * aStep]); c30 = madd(c30, x, b0); c31 = madd(c31, x, b1)
                bp += rowBytes
            }
            let o = out + j * l
            store(c00, o); store(c01, o + l)
            if rows > 1 { store(c10, o + ldo); store(c11, o + ldo + l) }
            if rows > 2 { store(c20, o + 2 * ldo); store(c21, o + 2 * ldo + l) }
            if rows > 3 { store(c30, o + 3 * ldo); store(c31, o + 3 * ldo + l) }
            j += 2
        }
        if j < chunks {
            var c0 = V(), c1 = V(), c2 = V(), c3 = V()
            var bp = UnsafeRawPointer(b + j * l)
            for p in 0..<k {
                let b0 = load(bp, 0)
                c0 = madd(c0, splat(a0[p * aStep]), b0); c1 = madd(c1, splat(a1[p * aStep]), b0)
                c2 = madd(c2, splat(a2[p * aStep]), b0); c3 = madd(c3, splat(a3[p * aStep]), b0)
                bp += rowBytes
            }
            let o = out + j * l
            store(c0, o)
            if rows > 1 { store(c1, o + ldo) }
            if rows > 2 { store(c2, o + 2 * ldo) }
            if rows > 3 { store(c3, o + 3 * ldo) }
        }
    }

    /// Probabilities of query row `ti` from its raw scores: softmax over keys s ≤ ti of
    /// scores[s]·scale + allow[s], where allow is 0 for a real key and −∞ for padding (the
    /// query's own position is always allowed). `scores` has room for whole vectors past ti and
    /// is used as scratch. Writes row[0..<t], zero after ti.
    @inlinable @inline(__always)
    public static func attentionSoftmaxRow(
        _ scores: UnsafeMutablePointer<Float>, _ allow: UnsafePointer<Float>, _ ti: Int,
        _ scale: Float, _ row: UnsafeMutablePointer<Float>, _ t: Int
    ) {
        let l = lanes
        let chunks = ti / l + 1
        let sv = splat(scale)
        let own = scores[ti] * scale
        var mv = splat(-.infinity)
        for j in 0..<chunks {
            var x = load(scores + l * j) * sv + load(allow + l * j)
            // the vector holding the query: keys after it are masked
            if j == chunks - 1 { x += load(causalChunkMask + 16 * (ti % l)) }
            store(x, scores + l * j)
            mv = vmax(mv, x)
        }
        scores[ti] = own // a query always sees itself, even a padding one
        let m = splat(Swift.max(hmax(mv), own))
        var acc = V()
        for j in 0..<chunks {
            let e = exp(load(scores + l * j) - m)
            store(e, scores + l * j); acc += e
        }
        let inv = 1 / hsum(acc)
        let iv = splat(inv)
        var j = 0
        while j < chunks && l * j + l <= t { store(load(scores + l * j) * iv, row + l * j); j += 1 }
        var s = l * j
        while s < Swift.min(l * chunks, t) { row[s] = scores[s] * inv; s += 1 }
        if s < t { (row + s).update(repeating: 0, count: t - s) }
    }

    /// One row of the softmax backward: ds[s] = p[s]·(dp[s] − Σ p·dp)·scale for s ≤ ti, and
    /// zeros from ti+1 to `zeroEnd`.
    @inlinable @inline(__always)
    public static func softmaxGradRow(
        _ p: UnsafePointer<Float>, _ dp: UnsafePointer<Float>, _ ds: UnsafeMutablePointer<Float>,
        _ ti: Int, _ scale: Float, _ zeroEnd: Int
    ) {
        let l = lanes
        let sum = dot(p, dp, ti + 1)
        // elementwise, so vector and scalar lanes round alike
        let sv = splat(sum), scv = splat(scale)
        var s = 0
        while s + l <= ti + 1 { store(load(p + s) * (load(dp + s) - sv) * scv, ds + s); s += l }
        while s <= ti { ds[s] = p[s] * (dp[s] - sum) * scale; s += 1 }
        while s < zeroEnd { ds[s] = 0; s += 1 }
    }

    /// scores[s] = Σ_d (q[d]·scale)·keys[d·ld + s] for s < n, keys stored transposed (one row of
    /// `ld` positions per head dimension). Each vector of scores stays in a register across the
    /// head dimensions.
    @inlinable @inline(__always)
    public static func decodeScores(
        _ q: UnsafePointer<Float>, _ scale: Float, _ keys: UnsafePointer<Float>, _ ld: Int, _ hs: Int,
        _ n: Int, _ scores: UnsafeMutablePointer<Float>
    ) {
        let l = lanes
        var s = 0
        while s + l <= n {
            var acc = V()
            for d in 0..<hs { acc = madd(acc, splat(q[d] * scale), load(keys + d * ld + s)) }
            store(acc, scores + s)
            s += l
        }
        while s < n {
            var x: Float = 0
            for d in 0..<hs { x += q[d] * scale * keys[d * ld + s] }
            scores[s] = x
            s += 1
        }
    }

    /// out[j] = Σ_s p[s]·values[s·hs + j] for j < hs over the positions with p[s] ≠ 0, in order
    /// of s, a vector of output columns at a time held in a register.
    @inlinable @inline(__always)
    public static func decodeWeightedValues(
        _ p: UnsafePointer<Float>, _ n: Int, _ values: UnsafePointer<Float>, _ hs: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        let l = lanes
        var j = 0
        while j + l <= hs {
            var acc = V()
            for s in 0..<n where p[s] != 0 { acc = madd(acc, splat(p[s]), load(values + s * hs + j)) }
            store(acc, out + j)
            j += l
        }
        while j < hs {
            var x: Float = 0
            for s in 0..<n where p[s] != 0 { x += p[s] * values[s * hs + j] }
            out[j] = x
            j += 1
        }
    }
}
