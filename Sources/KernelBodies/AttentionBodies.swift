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
    /// `ld` positions per head dimension), summed over d in order. Up to four vectors of positions
    /// at a time, each in a register across the head dimensions: independent chains of FMAs. A
    /// last, partial vector is summed with separate multiplies and adds, as a scalar loop would,
    /// so the caller must give keys and scores room for n rounded up to a whole vector (floats
    /// past n are read, and written in scores).
    @inlinable @inline(__always)
    public static func decodeScores(
        _ q: UnsafePointer<Float>, _ scale: Float, _ keys: UnsafePointer<Float>, _ ld: Int, _ hs: Int,
        _ n: Int, _ scores: UnsafeMutablePointer<Float>
    ) {
        let l = lanes
        var s = 0
        while s < n {
            let full = Swift.min(4, (n - s) / l), partial = full < 4 && s + full * l < n
            switch (full, partial) {
            case (4, _): decodeScoreVectors(full: 4, partial: false, q, scale, keys + s, ld, hs, scores + s)
            case (3, true): decodeScoreVectors(full: 3, partial: true, q, scale, keys + s, ld, hs, scores + s)
            case (3, false): decodeScoreVectors(full: 3, partial: false, q, scale, keys + s, ld, hs, scores + s)
            case (2, true): decodeScoreVectors(full: 2, partial: true, q, scale, keys + s, ld, hs, scores + s)
            case (2, false): decodeScoreVectors(full: 2, partial: false, q, scale, keys + s, ld, hs, scores + s)
            case (1, true): decodeScoreVectors(full: 1, partial: true, q, scale, keys + s, ld, hs, scores + s)
            case (1, false): decodeScoreVectors(full: 1, partial: false, q, scale, keys + s, ld, hs, scores + s)
            default: decodeScoreVectors(full: 0, partial: true, q, scale, keys + s, ld, hs, scores + s)
            }
            s += 4 * l
        }
    }

    /// `full` (0…4, a constant at each call) whole vectors of scores by FMA, and with `partial`
    /// one more by multiply and add.
    @inlinable @inline(__always)
    static func decodeScoreVectors(
        full: Int, partial: Bool, _ q: UnsafePointer<Float>, _ scale: Float, _ keys: UnsafePointer<Float>,
        _ ld: Int, _ hs: Int, _ scores: UnsafeMutablePointer<Float>
    ) {
        let l = lanes
        var a0 = V(), a1 = V(), a2 = V(), a3 = V(), tail = V()
        for d in 0..<hs {
            let x = splat(q[d] * scale), k = keys + d * ld
            if full > 0 { a0 = madd(a0, x, load(k)) }
            if full > 1 { a1 = madd(a1, x, load(k + l)) }
            if full > 2 { a2 = madd(a2, x, load(k + 2 * l)) }
            if full > 3 { a3 = madd(a3, x, load(k + 3 * l)) }
            if partial { tail = tail + x * load(k + full * l) }
        }
        if full > 0 { store(a0, scores) }
        if full > 1 { store(a1, scores + l) }
        if full > 2 { store(a2, scores + 2 * l) }
        if full > 3 { store(a3, scores + 3 * l) }
        if partial { store(tail, scores + full * l) }
    }

    /// out[j] = Σ_s p[s]·values[s·hs + j] for j < hs over the positions with p[s] ≠ 0, in order
    /// of s, up to four vectors of output columns at a time held in registers.
    @inlinable @inline(__always)
    public static func decodeWeightedValues(
        _ p: UnsafePointer<Float>, _ n: Int, _ values: UnsafePointer<Float>, _ hs: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        let l = lanes
        var j = 0
        while j + 4 * l <= hs {
            var a0 = V(), a1 = V(), a2 = V(), a3 = V()
            for s in 0..<n where p[s] != 0 {
                let w = splat(p[s]), v = values + s * hs + j
                a0 = madd(a0, w, load(v)); a1 = madd(a1, w, load(v + l))
                a2 = madd(a2, w, load(v + 2 * l)); a3 = madd(a3, w, load(v + 3 * l))
            }
            store(a0, out + j); store(a1, out + j + l); store(a2, out + j + 2 * l); store(a3, out + j + 3 * l)
            j += 4 * l
        }
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
