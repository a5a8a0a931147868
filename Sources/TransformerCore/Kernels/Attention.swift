import Foundation

// Causal multi-head self-attention with a key-padding mask.
//
// Query t of sequence b may attend to key s when s ≤ t and s is a real token (mask 1). A padding
// query attends only to itself, so its row stays finite; real queries never see padding.
// Per (b, h) the operands are packed once (keys transposed to (hs, T), values to (T, hs)), and the
// products run through a 4-row register tile with no horizontal sums in the inner loop.

/// Per-worker scratch for the attention kernels.
let attentionScratch = ScratchSet()

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

/// Rounds up to a whole number of 16-float vectors.
@inline(__always) func roundUp16(_ n: Int) -> Int { (n + 15) & ~15 }

/// A small register-tiled product for attention: for r < rows (1…4),
/// out[r·ldo + j] = Σ_{p<k} a[r·lda + p·aStep] · b[p·ldb + j] for j < 16·chunks.
/// B is read 16 columns at a time, so each of its k rows needs 16·chunks readable floats.
/// Rows of A past `rows` are not read; rows of `out` past `rows` are not written. With
/// `lda` 1 and `aStep` the row length, A is read as the transpose of a row-major matrix.
@inline(__always)
func attentionTile(_ a: UnsafePointer<Float>, _ lda: Int, rows: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                   k: Int, chunks: Int, _ out: UnsafeMutablePointer<Float>, _ ldo: Int, aStep: Int = 1) {
    let a0 = a, a1 = a + min(1, rows - 1) * lda, a2 = a + min(2, rows - 1) * lda, a3 = a + min(3, rows - 1) * lda
    let rowBytes = ldb * 4
    var j = 0
    while j + 2 <= chunks {
        var c00 = F16(), c01 = F16(), c10 = F16(), c11 = F16(), c20 = F16(), c21 = F16(), c30 = F16(), c31 = F16()
        var bp = UnsafeRawPointer(b + j * 16)
        for p in 0..<k {
            let b0 = bp.loadUnaligned(as: F16.self), b1 = bp.loadUnaligned(fromByteOffset: 64, as: F16.self)
            var x = F16(repeating: a0[p * aStep]); c00 = c00.addingProduct(x, b0); c01 = c01.addingProduct(x, b1)
            x = F16(repeating: a1[p * aStep]); c10 = c10.addingProduct(x, b0); c11 = c11.addingProduct(x, b1)
            x = F16(repeating: a2[p * aStep]); c20 = c20.addingProduct(x, b0); c21 = c21.addingProduct(x, b1)
            x = F16(repeating: a3[p * aStep]); c30 = c30.addingProduct(x, b0); c31 = c31.addingProduct(x, b1)
            bp += rowBytes
        }
        let o = out + j * 16
        vstore(c00, o); vstore(c01, o + 16)
        if rows > 1 { vstore(c10, o + ldo); vstore(c11, o + ldo + 16) }
        if rows > 2 { vstore(c20, o + 2 * ldo); vstore(c21, o + 2 * ldo + 16) }
        if rows > 3 { vstore(c30, o + 3 * ldo); vstore(c31, o + 3 * ldo + 16) }
        j += 2
    }
    if j < chunks {
        var c0 = F16(), c1 = F16(), c2 = F16(), c3 = F16()
        var bp = UnsafeRawPointer(b + j * 16)
        for p in 0..<k {
            let b0 = bp.loadUnaligned(as: F16.self)
            c0 = c0.addingProduct(F16(repeating: a0[p * aStep]), b0); c1 = c1.addingProduct(F16(repeating: a1[p * aStep]), b0)
            c2 = c2.addingProduct(F16(repeating: a2[p * aStep]), b0); c3 = c3.addingProduct(F16(repeating: a3[p * aStep]), b0)
            bp += rowBytes
        }
        let o = out + j * 16
        vstore(c0, o)
        if rows > 1 { vstore(c1, o + ldo) }
        if rows > 2 { vstore(c2, o + 2 * ldo) }
        if rows > 3 { vstore(c3, o + 3 * ldo) }
    }
}

/// Copies `rows` rows of `cols` floats (source rows `lds` apart) into rows `ldd` apart, filling
/// columns cols..<ldd with zeros.
@inline(__always)
func packRowsPadded(_ src: UnsafePointer<Float>, _ lds: Int, rows: Int, cols: Int,
                    _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    for r in 0..<rows {
        copyFloats(dst + r * ldd, src + r * lds, cols)
        if ldd > cols { (dst + r * ldd + cols).update(repeating: 0, count: ldd - cols) }
    }
}

/// dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols, and zeros in dst columns rows..<ldd.
@inline(__always)
func transposePadded(_ src: UnsafePointer<Float>, _ lds: Int, rows: Int, cols: Int,
                     _ dst: UnsafeMutablePointer<Float>, _ ldd: Int) {
    for j in 0..<cols {
        let d = dst + j * ldd
        for i in 0..<rows { d[i] = src[i * lds + j] }
        if ldd > rows { (d + rows).update(repeating: 0, count: ldd - rows) }
    }
}

/// Probabilities of query row `ti` from its raw scores: softmax over keys s ≤ ti of
/// scores[s]·scale + allow[s], where allow is 0 for a real key and −∞ for padding (the query's
/// own position is always allowed). `scores` has room for whole 16-float vectors past ti and is
/// used as scratch. Writes row[0..<t], zero after ti.
@inline(__always)
func attentionSoftmaxRow(_ scores: UnsafeMutablePointer<Float>, _ allow: UnsafePointer<Float>, _ ti: Int, _ scale: Float,
                         _ row: UnsafeMutablePointer<Float>, _ t: Int) {
    let chunks = ti / 16 + 1
    let sv = F16(repeating: scale)
    let own = scores[ti] * scale
    var mv = F16(repeating: -.infinity)
    for j in 0..<chunks {
        var x = vload(scores + 16 * j) * sv + vload(allow + 16 * j)
        // the chunk holding the query: keys after it are masked
        if j == chunks - 1 { x += vload(causalChunkMask + 16 * (ti & 15)) }
        vstore(x, scores + 16 * j)
        mv = vmax(mv, x)
    }
    scores[ti] = own                        // a query always sees itself, even a padding one
    let m = F16(repeating: Swift.max(hmax(mv), own))
    var acc = F16()
    for j in 0..<chunks {
        let e = vexp(vload(scores + 16 * j) - m)
        vstore(e, scores + 16 * j); acc += e
    }
    let inv = 1 / hsum(acc)
    let iv = F16(repeating: inv)
    var j = 0
    while j < chunks && 16 * j + 16 <= t { vstore(vload(scores + 16 * j) * iv, row + 16 * j); j += 1 }
    var s = 16 * j
    while s < Swift.min(16 * chunks, t) { row[s] = scores[s] * inv; s += 1 }
    if s < t { (row + s).update(repeating: 0, count: t - s) }
}

/// Row k (16 floats) is 0 in lanes ≤ k and −∞ after: the causal mask of the chunk that holds
/// query k (mod 16).
let causalChunkMask: UnsafePointer<Float> = {
    let p = UnsafeMutablePointer<Float>.allocate(capacity: 256)
    for k in 0..<16 { for l in 0..<16 { p[k * 16 + l] = l <= k ? 0 : -.infinity } }
    return UnsafePointer(p)
}()

/// The threads worth using for attention over `b·nh` heads of length `t`.
@inline(__always) func attentionThreads(_ b: Int, _ t: Int, _ hs: Int) -> Int {
    b * t * t * hs >= (1 << 15) ? Parallel.threadCount : 1
}

/// out (B,T,C), att (B,NH,T,T) ← qkv (B,T,3C), mask (B,T).
///
/// Per (b, h), four query rows at a time: scores = q·Kᵀ with Kᵀ packed (hs, T), the masked
/// softmax, then out = P·V with V packed (T, hs) — both products register-tiled, and each
/// block only goes as far as the last key its rows may see.
func attentionForward(_ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>, _ qkv: UnsafePointer<Float>,
                      _ mask: UnsafePointer<UInt8>, _ b: Int, _ t: Int, _ c: Int, _ nh: Int) {
    let hs = c / nh, c3 = 3 * c
    let scale = 1 / Float(hs).squareRoot()
    let tp = roundUp16(t), hp = roundUp16(hs)
    Parallel.forEachTask(b * nh, threads: attentionThreads(b, t, hs)) { task, worker in
        let bi = task / nh, h = task % nh
        let kt = attentionScratch(worker).floats(hs * tp + t * hp + 4 * tp + 4 * hp + tp)
        let vv = kt + hs * tp, sc = vv + t * hp, ot = sc + 4 * tp, allow = ot + 4 * hp
        let base = qkv + bi * t * c3
        let m = mask + bi * t
        for s in 0..<tp { allow[s] = s < t && m[s] != 0 ? 0 : -.infinity }
        transposePadded(base + c + h * hs, c3, rows: t, cols: hs, kt, tp)
        // With whole 16-float vectors per head row, V is read in place.
        let (vRows, ldv) = hs == hp ? (base + 2 * c + h * hs, c3) : (UnsafePointer(vv), hp)
        if hs != hp { packRowsPadded(base + 2 * c + h * hs, c3, rows: t, cols: hs, vv, hp) }
        var t0 = 0
        while t0 < t {
            let rows = min(4, t - t0), keys = t0 + rows
            attentionTile(base + t0 * c3 + h * hs, c3, rows: rows, kt, tp, k: hs, chunks: (keys + 15) / 16, sc, tp)
            for r in 0..<rows {
                attentionSoftmaxRow(sc + r * tp, allow, t0 + r, scale, att + ((bi * nh + h) * t + t0 + r) * t, t)
            }
            attentionTile(att + ((bi * nh + h) * t + t0) * t, t, rows: rows, vRows, ldv, k: keys, chunks: hp / 16, ot, hp)
            for r in 0..<rows { copyFloats(out + (bi * t + t0 + r) * c + h * hs, ot + r * hp, hs) }
            t0 += rows
        }
    }
}

/// dqkv (B,T,3C) ← gradients through attention given dout (B,T,C); dqkv is overwritten.
///
/// Per (b, h): dP = dO·Vᵀ and the softmax backward give dS (T×T, scale folded in) four rows at a
/// time, with dQ = dS·K; then dK = dSᵀ·Q and dV = Pᵀ·dO with dS and P read column-wise in
/// place, each row block starting at its own index since both transposes are upper-triangular.
func attentionBackward(_ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>,
                       _ att: UnsafePointer<Float>, _ b: Int, _ t: Int, _ c: Int, _ nh: Int) {
    let hs = c / nh, c3 = 3 * c
    let scale = 1 / Float(hs).squareRoot()
    let tp = roundUp16(t), hp = roundUp16(hs)
    Parallel.forEachTask(b * nh, threads: attentionThreads(b, t, hs)) { task, worker in
        let bi = task / nh, h = task % nh
        let qq = attentionScratch(worker).floats(3 * t * hp + hs * tp + t * t + 4 * tp + 4 * hp)
        let kk = qq + t * hp, dOp = kk + t * hp, vt = dOp + t * hp
        let ds = vt + hs * tp, dp = ds + t * t, tmp = dp + 4 * tp
        let base = qkv + bi * t * c3, dbase = dqkv + bi * t * c3
        let dO = dout + bi * t * c + h * hs
        let p = att + (bi * nh + h) * t * t
        // Q, K and dO are read in place when a head row is whole 16-float vectors.
        let inPlace = hs == hp
        let (qRows, ldq) = inPlace ? (base + h * hs, c3) : (UnsafePointer(qq), hp)
        let (kRows, ldk) = inPlace ? (base + c + h * hs, c3) : (UnsafePointer(kk), hp)
        let (dORows, lddO) = inPlace ? (dO, c) : (UnsafePointer(dOp), hp)
        if !inPlace {
            packRowsPadded(base + h * hs, c3, rows: t, cols: hs, qq, hp)
            packRowsPadded(base + c + h * hs, c3, rows: t, cols: hs, kk, hp)
            packRowsPadded(dO, c, rows: t, cols: hs, dOp, hp)
        }
        transposePadded(base + 2 * c + h * hs, c3, rows: t, cols: hs, vt, tp)
        var t0 = 0
        while t0 < t {
            let rows = min(4, t - t0), keys = t0 + rows
            // dP = dO·Vᵀ for these rows, then dS = P ⊙ (dP − Σ P·dP) · scale
            attentionTile(dO + t0 * c, c, rows: rows, vt, tp, k: hs, chunks: (keys + 15) / 16, dp, tp)
            for r in 0..<rows {
                let ti = t0 + r
                let pr = p + ti * t, dsr = ds + ti * t, dpr = dp + r * tp
                let sum = dot(pr, dpr, ti + 1)
                // elementwise, so vector and scalar lanes round alike; zero up to the end of the
                // 4-row block, the last column the transposed reads below can reach in this row
                let sv = F16(repeating: sum), scv = F16(repeating: scale)
                var s = 0
                while s + 16 <= ti + 1 { vstore(vload(pr + s) * (vload(dpr + s) - sv) * scv, dsr + s); s += 16 }
                while s <= ti { dsr[s] = pr[s] * (dpr[s] - sum) * scale; s += 1 }
                while s < min(t, t0 + 4) { dsr[s] = 0; s += 1 }
            }
            // dQ = dS·K
            attentionTile(ds + t0 * t, t, rows: rows, kRows, ldk, k: keys, chunks: hp / 16, tmp, hp)
            for r in 0..<rows { copyFloats(dbase + (t0 + r) * c3 + h * hs, tmp + r * hp, hs) }
            t0 += rows
        }
        var s0 = 0
        while s0 < t {
            // dS and P read as their transposes in place (row s of the transpose is column s,
            // zero above the diagonal), so each sum starts at query s0
            let rows = min(4, t - s0), k = t - s0
            attentionTile(ds + s0 * t + s0, 1, rows: rows, qRows + s0 * ldq, ldq, k: k, chunks: hp / 16, tmp, hp, aStep: t)
            for r in 0..<rows { copyFloats(dbase + (s0 + r) * c3 + c + h * hs, tmp + r * hp, hs) }
            attentionTile(p + s0 * t + s0, 1, rows: rows, dORows + s0 * lddO, lddO, k: k, chunks: hp / 16, tmp, hp, aStep: t)
            for r in 0..<rows { copyFloats(dbase + (s0 + r) * c3 + 2 * c + h * hs, tmp + r * hp, hs) }
            s0 += rows
        }
    }
}

