import Foundation
import KernelBodies

// Causal multi-head self-attention with a key-padding mask.
//
// Query t of sequence b may attend to key s when s ≤ t and s is a real token (mask 1). A padding
// query attends only to itself, so its row stays finite; real queries never see padding.
// Per (b, h) the operands are packed once (keys transposed to (hs, T), values to (T, hs)), and the
// products run through the active path's 4-row register tile (`KernelTable.attentionTile`) with
// no horizontal sums in the inner loop. Buffers are padded to whole 16-float blocks, a whole
// number of vectors on every path.

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

/// Copies `rows` rows of `cols` floats (source rows `lds` apart) into rows `ldd` apart, filling
/// columns cols..<ldd with zeros.
@inline(__always)
func packRowsPadded(
    _ src: UnsafePointer<Float>, _ lds: Int, rows: Int, cols: Int,
    _ dst: UnsafeMutablePointer<Float>, _ ldd: Int
) {
    for r in 0..<rows {
        copyFloats(dst + r * ldd, src + r * lds, cols)
        if ldd > cols { (dst + r * ldd + cols).update(repeating: 0, count: ldd - cols) }
    }
}

/// dst[j·ldd + i] = src[i·lds + j] for i < rows, j < cols, and zeros in dst columns rows..<ldd.
@inline(__always)
func transposePadded(
    _ src: UnsafePointer<Float>, _ lds: Int, rows: Int, cols: Int,
    _ dst: UnsafeMutablePointer<Float>, _ ldd: Int
) {
    for j in 0..<cols {
        let d = dst + j * ldd
        for i in 0..<rows { d[i] = src[i * lds + j] }
        if ldd > rows { (d + rows).update(repeating: 0, count: ldd - rows) }
    }
}

/// The threads worth using for attention over `b·nh` heads of length `t`.
@inline(__always) func attentionThreads(_ b: Int, _ t: Int, _ hs: Int) -> Int {
    b * t * t * hs >= (1 << 15) ? Parallel.threadCount : 1
}

/// The shape of multi-head attention over a fused q|k|v buffer: `nh` query heads and `nkv`
/// key/value heads (grouped-query attention when fewer; query head h reads kv head
/// h / (nh/nkv)), each `hs` wide. A row of q|k|v holds the nh query heads, then the nkv key
/// heads, then the nkv value heads; a row of the output holds the nh heads.
struct AttentionHeads {
    let nh: Int, nkv: Int, hs: Int
    init(_ config: ModelConfig) { nh = config.nHead; nkv = config.nKVHead; hs = config.headDim }
    init(nh: Int, nkv: Int, hs: Int) { self.nh = nh; self.nkv = nkv; self.hs = hs }
    /// Floats per q|k|v row, and per output row.
    var ldqkv: Int { (nh + 2 * nkv) * hs }
    var ldout: Int { nh * hs }
    /// Query heads per key/value head.
    var group: Int { nh / nkv }
    /// Offsets, within a q|k|v row, of query head h, and of key and value head j.
    @inline(__always) func q(_ h: Int) -> Int { h * hs }
    @inline(__always) func k(_ j: Int) -> Int { (nh + j) * hs }
    @inline(__always) func v(_ j: Int) -> Int { (nh + nkv + j) * hs }
}

/// out (B,T,NH·hs), att (B,NH,T,T) ← qkv (B,T,ldqkv), mask (B,T).
///
/// Per (b, h), four query rows at a time: scores = q·Kᵀ with Kᵀ packed (hs, T), the masked
/// softmax, then out = P·V with V packed (T, hs) — both products register-tiled, and each
/// block only goes as far as the last key its rows may see.
func attentionForward(
    _ out: UnsafeMutablePointer<Float>, _ att: UnsafeMutablePointer<Float>, _ qkv: UnsafePointer<Float>,
    _ mask: UnsafePointer<UInt8>, _ b: Int, _ t: Int, _ shape: AttentionHeads
) {
    let hs = shape.hs, nh = shape.nh, ld = shape.ldqkv, ldo = shape.ldout
    let scale = 1 / Float(hs).squareRoot()
    let tp = roundUp16(t), hp = roundUp16(hs)
    let kern = Kernels.active
    Parallel.forEachTask(b * nh, threads: attentionThreads(b, t, hs)) { task, worker in
        let bi = task / nh, h = task % nh, j = h / shape.group
        let kt = attentionScratch(worker).floats(hs * tp + t * hp + 4 * tp + 4 * hp + tp)
        let vv = kt + hs * tp, sc = vv + t * hp, ot = sc + 4 * tp, allow = ot + 4 * hp
        let base = qkv + bi * t * ld
        let m = mask + bi * t
        for s in 0..<tp { allow[s] = s < t && m[s] != 0 ? 0 : -.infinity }
        transposePadded(base + shape.k(j), ld, rows: t, cols: hs, kt, tp)
        // With whole 16-float blocks per head row, V is read in place.
        let (vRows, ldv) = hs == hp ? (base + shape.v(j), ld) : (UnsafePointer(vv), hp)
        if hs != hp { packRowsPadded(base + shape.v(j), ld, rows: t, cols: hs, vv, hp) }
        var t0 = 0
        while t0 < t {
            let rows = min(4, t - t0), keys = t0 + rows
            kern.attentionTile(base + t0 * ld + shape.q(h), ld, rows, kt, tp, hs, keys, sc, tp, 1)
            for r in 0..<rows {
                kern.attentionSoftmaxRow(sc + r * tp, allow, t0 + r, scale, att + ((bi * nh + h) * t + t0 + r) * t, t)
            }
            kern.attentionTile(att + ((bi * nh + h) * t + t0) * t, t, rows, vRows, ldv, keys, hp, ot, hp, 1)
            for r in 0..<rows { copyFloats(out + (bi * t + t0 + r) * ldo + h * hs, ot + r * hp, hs) }
            t0 += rows
        }
    }
}

/// dqkv (B,T,ldqkv) ← gradients through attention given dout (B,T,NH·hs); dqkv is overwritten.
///
/// Per (b, kv head j), for each query head h of its group: dP = dO·Vᵀ and the softmax backward
/// give dS (T×T, scale folded in) four rows at a time, with dQ = dS·K; then dK = dSᵀ·Q and
/// dV = Pᵀ·dO with dS and P read column-wise in place, each row block starting at its own index
/// since both transposes are upper-triangular. dK and dV sum over the group's query heads.
func attentionBackward(
    _ dqkv: UnsafeMutablePointer<Float>, _ dout: UnsafePointer<Float>, _ qkv: UnsafePointer<Float>,
    _ att: UnsafePointer<Float>, _ b: Int, _ t: Int, _ shape: AttentionHeads
) {
    let hs = shape.hs, nh = shape.nh, nkv = shape.nkv, ld = shape.ldqkv, ldo = shape.ldout
    let scale = 1 / Float(hs).squareRoot()
    let tp = roundUp16(t), hp = roundUp16(hs)
    let kern = Kernels.active
    Parallel.forEachTask(b * nkv, threads: attentionThreads(b, t, hs)) { task, worker in
        let bi = task / nkv, j = task % nkv
        let qq = attentionScratch(worker).floats(3 * t * hp + hs * tp + t * t + 4 * tp + 4 * hp)
        let kk = qq + t * hp, dOp = kk + t * hp, vt = dOp + t * hp
        let ds = vt + hs * tp, dp = ds + t * t, tmp = dp + 4 * tp
        let base = qkv + bi * t * ld, dbase = dqkv + bi * t * ld
        // K and Vᵀ are shared by the group's query heads.
        let inPlace = hs == hp
        let (kRows, ldk) = inPlace ? (base + shape.k(j), ld) : (UnsafePointer(kk), hp)
        if !inPlace { packRowsPadded(base + shape.k(j), ld, rows: t, cols: hs, kk, hp) }
        transposePadded(base + shape.v(j), ld, rows: t, cols: hs, vt, tp)
        for h in (j * shape.group)..<((j + 1) * shape.group) {
            let first = h == j * shape.group
            let dO = dout + bi * t * ldo + h * hs
            let p = att + (bi * nh + h) * t * t
            // Q and dO are read in place when a head row is whole 16-float blocks.
            let (qRows, ldq) = inPlace ? (base + shape.q(h), ld) : (UnsafePointer(qq), hp)
            let (dORows, lddO) = inPlace ? (dO, ldo) : (UnsafePointer(dOp), hp)
            if !inPlace {
                packRowsPadded(base + shape.q(h), ld, rows: t, cols: hs, qq, hp)
                packRowsPadded(dO, ldo, rows: t, cols: hs, dOp, hp)
            }
            var t0 = 0
            while t0 < t {
                let rows = min(4, t - t0), keys = t0 + rows
                // dP = dO·Vᵀ for these rows, then dS = P ⊙ (dP − Σ P·dP) · scale
                kern.attentionTile(dO + t0 * ldo, ldo, rows, vt, tp, hs, keys, dp, tp, 1)
                for r in 0..<rows {
                    // zero up to the end of the 4-row block, the last column the transposed reads
                    // below can reach in this row
                    let ti = t0 + r
                    kern.softmaxGradRow(p + ti * t, dp + r * tp, ds + ti * t, ti, scale, min(t, t0 + 4))
                }
                // dQ = dS·K
                kern.attentionTile(ds + t0 * t, t, rows, kRows, ldk, keys, hp, tmp, hp, 1)
                for r in 0..<rows { copyFloats(dbase + (t0 + r) * ld + shape.q(h), tmp + r * hp, hs) }
                t0 += rows
            }
            var s0 = 0
            while s0 < t {
                // dS and P read as their transposes in place (row s of the transpose is column s,
                // zero above the diagonal), so each sum starts at query s0
                let rows = min(4, t - s0), k = t - s0
                kern.attentionTile(ds + s0 * t + s0, 1, rows, qRows + s0 * ldq, ldq, k, hp, tmp, hp, t)
                for r in 0..<rows { accumulate(dbase + (s0 + r) * ld + shape.k(j), tmp + r * hp, hs, first) }
                kern.attentionTile(p + s0 * t + s0, 1, rows, dORows + s0 * lddO, lddO, k, hp, tmp, hp, t)
                for r in 0..<rows { accumulate(dbase + (s0 + r) * ld + shape.v(j), tmp + r * hp, hs, first) }
                s0 += rows
            }
        }
    }
}

/// dst = src (when `overwrite`) or dst += src, over n floats.
@inline(__always) func accumulate(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int, _ overwrite: Bool) {
    if overwrite { copyFloats(dst, src, n) } else { addInPlace(src, dst, n) }
}
