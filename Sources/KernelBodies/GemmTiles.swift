import CPUFeatures

// Register-tiled GEMM micro-kernels, one body for every instruction set. The main tile is
// `rows` × 2 vectors of C held in 2·rows accumulators: per k step two vector loads of B, `rows`
// broadcasts of A and 2·rows FMAs. The kernel targets choose `rows` so that the accumulators, the
// two B vectors and a broadcast fit the register file: 12 × 32 on AVX-512 (32 zmm), 6 × 16 on AVX2
// (16 ymm), 12 × 8 on NEON (32 q) and 6 × 8 on SSE (16 xmm).

extension Body {
    /// C[0..<rows, 0..<2·lanes] (=|+=) A·B over `kc` steps, for `rows` 4, 6, 8 or 12 (a constant
    /// at each call, so the other rows' accumulators compile away). `a` holds the rows' values of
    /// each k contiguously (packed: `rows` floats per k); `b` has `ldb` floats between k rows, read
    /// unaligned. In `.bias` mode the tile starts from `bias[0..<2·lanes]` down the rows.
    @inlinable @inline(__always)
    public static func tile2(
        rows: Int, _ kc: Int, _ a: UnsafePointer<Float>,
        _ b: UnsafePointer<Float>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode,
        _ bias: UnsafePointer<Float>?
    ) {
        let vb = vbytes
        let cr = UnsafeMutableRawPointer(c)
        var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V(),
            c60 = V(), c61 = V(), c70 = V(), c71 = V(), c80 = V(), c81 = V(), c90 = V(), c91 = V(), c100 = V(), c101 = V(), c110 = V(), c111 = V()
        var ap = a
        var bp = UnsafeRawPointer(b)
        let bstride = ldb * 4
        // C's rows are read (accumulate) and written once the k loop is done; ask for their lines
        // now, so they arrive while it runs. In training most products accumulate into C, and
        // without this the tile's first reads of C waited on memory.
        if mode == .accumulate {
            for r in 0..<rows {
                let row = UnsafeRawPointer(cr) + r * ldc * 4
                rlhf_prefetch_l2(row); rlhf_prefetch_l2(row + 2 * vb - 1)
                if vb > 32 { rlhf_prefetch_l2(row + vb) }
            }
        }
        var p = 0
        while p < kc {
            let b0 = load(bp, 0), b1 = load(bp, vb)
            let a0 = splat(ap[0])
            c00 = madd(c00, a0, b0); c01 = madd(c01, a0, b1)
            let a1 = splat(ap[1])
            c10 = madd(c10, a1, b0); c11 = madd(c11, a1, b1)
            let a2 = splat(ap[2])
            c20 = madd(c20, a2, b0); c21 = madd(c21, a2, b1)
            let a3 = splat(ap[3])
            c30 = madd(c30, a3, b0); c31 = madd(c31, a3, b1)
            if rows > 4 {
                let a4 = splat(ap[4])
                c40 = madd(c40, a4, b0); c41 = madd(c41, a4, b1)
                let a5 = splat(ap[5])
                c50 = madd(c50, a5, b0); c51 = madd(c51, a5, b1)
            }
            if rows > 6 {
                let a6 = splat(ap[6])
                c60 = madd(c60, a6, b0); c61 = madd(c61, a6, b1)
                let a7 = splat(ap[7])
                c70 = madd(c70, a7, b0); c71 = madd(c71, a7, b1)
            }
            if rows > 8 {
                let a8 = splat(ap[8])
                c80 = madd(c80, a8, b0); c81 = madd(c81, a8, b1)
                let a9 = splat(ap[9])
                c90 = madd(c90, a9, b0); c91 = madd(c91, a9, b1)
                let a10 = splat(ap[10])
                c100 = madd(c100, a10, b0); c101 = madd(c101, a10, b1)
                let a11 = splat(ap[11])
                c110 = madd(c110, a11, b0); c111 = madd(c111, a11, b1)
            }
            ap += rows
            bp += bstride
            p += 1
        }
        // Combine with C or the bias, and store.
        @inline(__always) func finish(_ v0: V, _ v1: V, _ r: Int) {
            let o = r * ldc * 4
            var x0 = v0, x1 = v1
            switch mode {
            case .overwrite: break
            case .bias:
                let br = UnsafeRawPointer(bias!)
                x0 += load(br, 0); x1 += load(br, vb)
            case .accumulate:
                x0 += load(UnsafeRawPointer(cr), o); x1 += load(UnsafeRawPointer(cr), o + vb)
            }
            store(x0, cr, o); store(x1, cr, o + vb)
        }
        finish(c00, c01, 0)
        finish(c10, c11, 1)
        finish(c20, c21, 2)
        finish(c30, c31, 3)
        if rows > 4 {
            finish(c40, c41, 4)
            finish(c50, c51, 5)
        }
        if rows > 6 {
            finish(c60, c61, 6)
            finish(c70, c71, 7)
        }
        if rows > 8 {
            finish(c80, c81, 8)
            finish(c90, c91, 9)
            finish(c100, c101, 10)
            finish(c110, c111, 11)
        }
    }

    /// The decode tile: C[0..<4, 0..<nv·lanes] (=|+=) A·B for products with a handful of rows
    /// (one per sequence being sampled), which stream the weights from memory, so each B row
    /// gives nv·lanes contiguous floats per tile. `nv` is 2, 3, 4 or 6 (a constant at each call);
    /// `a` holds 4 floats per k and B is read in place, `ldb` elements between k rows; B's
    /// elements are floats, or bfloat16 widened as they are loaded (half the bytes to stream).
    @inlinable @inline(__always)
    public static func decodeTile<W: WeightElement>(
        vectors nv: Int, _ kc: Int, _ a: UnsafePointer<Float>,
        _ b: UnsafePointer<W>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode,
        _ bias: UnsafePointer<Float>?
    ) {
        let vb = vbytes
        let cr = UnsafeMutableRawPointer(c)
        let l = lanes
        var c00 = V(), c01 = V(), c02 = V(), c03 = V(), c04 = V(), c05 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V(),
            c20 = V(), c21 = V(), c22 = V(), c23 = V(), c24 = V(), c25 = V(), c30 = V(), c31 = V(), c32 = V(), c33 = V(), c34 = V(), c35 = V()
        var ap = a
        var bp = UnsafeRawPointer(b)
        let bstride = ldb * MemoryLayout<W>.stride
        var p = 0
        // Each step also asks for the same columns a few dozen k rows further on, into L2 (every
        // line of them): the hardware prefetcher alone leaves the core waiting on memory. Measured
        // on Zen 5, 8 × 768 × 2304 from memory: 17 GB/s without, 25 with 32 rows ahead (AVX-512);
        // AVX2's narrower panel wants about 64.
        let chunk = nv * l * MemoryLayout<W>.stride
        let ahead = max(32, 6144 / chunk) * bstride
        while p < kc {
            var o = 0
            while o < chunk { rlhf_prefetch_l2(bp + ahead + o); o += 64 }
            rlhf_prefetch_l2(bp + ahead + chunk - 1)
            let b0 = wload(W.self, bp, 0), b1 = wload(W.self, bp, l)
            var b2 = V()
            if nv > 2 {
                b2 = wload(W.self, bp, 2 * l)
            }
            var b3 = V()
            if nv > 3 {
                b3 = wload(W.self, bp, 3 * l)
            }
            var b4 = V(), b5 = V()
            if nv > 4 {
                b4 = wload(W.self, bp, 4 * l)
                b5 = wload(W.self, bp, 5 * l)
            }
            let a0 = splat(ap[0])
            c00 = madd(c00, a0, b0); c01 = madd(c01, a0, b1)
            if nv > 2 { c02 = madd(c02, a0, b2) }
            if nv > 3 { c03 = madd(c03, a0, b3) }
            if nv > 4 { c04 = madd(c04, a0, b4); c05 = madd(c05, a0, b5) }
            let a1 = splat(ap[1])
            c10 = madd(c10, a1, b0); c11 = madd(c11, a1, b1)
            if nv > 2 { c12 = madd(c12, a1, b2) }
            if nv > 3 { c13 = madd(c13, a1, b3) }
            if nv > 4 { c14 = madd(c14, a1, b4); c15 = madd(c15, a1, b5) }
            let a2 = splat(ap[2])
            c20 = madd(c20, a2, b0); c21 = madd(c21, a2, b1)
            if nv > 2 { c22 = madd(c22, a2, b2) }
            if nv > 3 { c23 = madd(c23, a2, b3) }
            if nv > 4 { c24 = madd(c24, a2, b4); c25 = madd(c25, a2, b5) }
            let a3 = splat(ap[3])
            c30 = madd(c30, a3, b0); c31 = madd(c31, a3, b1)
            if nv > 2 { c32 = madd(c32, a3, b2) }
            if nv > 3 { c33 = madd(c33, a3, b3) }
            if nv > 4 { c34 = madd(c34, a3, b4); c35 = madd(c35, a3, b5) }
            ap += 4
            bp += bstride
            p += 1
        }
        @inline(__always) func finish(_ v: V, _ r: Int, _ j: Int) {
            let o = r * ldc * 4 + j * vb
            var x = v
            switch mode {
            case .overwrite: break
            case .bias: x += load(UnsafeRawPointer(bias!), j * vb)
            case .accumulate: x += load(UnsafeRawPointer(cr), o)
            }
            store(x, cr, o)
        }
        finish(c00, 0, 0); finish(c01, 0, 1)
        if nv > 2 { finish(c02, 0, 2) }
        if nv > 3 { finish(c03, 0, 3) }
        if nv > 4 { finish(c04, 0, 4); finish(c05, 0, 5) }
        finish(c10, 1, 0); finish(c11, 1, 1)
        if nv > 2 { finish(c12, 1, 2) }
        if nv > 3 { finish(c13, 1, 3) }
        if nv > 4 { finish(c14, 1, 4); finish(c15, 1, 5) }
        finish(c20, 2, 0); finish(c21, 2, 1)
        if nv > 2 { finish(c22, 2, 2) }
        if nv > 3 { finish(c23, 2, 3) }
        if nv > 4 { finish(c24, 2, 4); finish(c25, 2, 5) }
        finish(c30, 3, 0); finish(c31, 3, 1)
        if nv > 2 { finish(c32, 3, 2) }
        if nv > 3 { finish(c33, 3, 3) }
        if nv > 4 { finish(c34, 3, 4); finish(c35, 3, 5) }
    }

    /// Dot products of two contiguous rows `w0`, `w1` (length k) with the 8 rows of `a` (8 × k):
    /// out[i] = a_i·w0, out[8 + i] = a_i·w1. Every load of A feeds two FMAs. With 32 vector
    /// registers (a 12-row GEMM tile) all 16 sums are held at once; with 16, the rows go in two
    /// halves of four, reading `w0` and `w1` again from L1.
    @inlinable @inline(__always)
    public static func dotRows8x2<W: WeightElement>(
        _ a: UnsafePointer<Float>, _ k: Int, _ w0: UnsafePointer<W>,
        _ w1: UnsafePointer<W>, _ out: UnsafeMutablePointer<Float>
    ) {
        if I.gemmMR >= 12 {
            dotRows(8, a, k, w0, w1, out)
        } else {
            dotRows(4, a, k, w0, w1, out)
            dotRows(4, a + 4 * k, k, w0, w1, out + 4)
        }
    }

    /// out[4·i + r] = a_i·w_r for the 4 rows a_i of `a` (k floats apart) and the 4 rows w_r of `w`
    /// (`ldw` floats apart): four streams of weights at once, each loaded vector feeding a
    /// multiply-add per row of `a`, for decoding products with weights stored [out, in]. With
    /// 32 vector registers (AVX-512, arm64) four rows of `a` at a time; with 16 (AVX2, SSE) two
    /// at a time, so the 4 × 4 tile is two passes over weights that stay in L1.
    @inlinable @inline(__always)
    public static func dotRows4x4<W: WeightElement>(
        _ a: UnsafePointer<Float>, _ k: Int, _ w: UnsafePointer<W>, _ ldw: Int,
        _ out: UnsafeMutablePointer<Float>
    ) {
        if I.gemmMR >= 12 {
            dotRowsX4(4, a, k, w, ldw, out, prefetch: true)
        } else {
            dotRowsX4(2, a, k, w, ldw, out, prefetch: true)
            dotRowsX4(2, a + 2 * k, k, w, ldw, out + 8, prefetch: false)
        }
    }

    /// out[4·i + r] = a_i·w_r for the first `rows` (2 or 4, a constant) rows of `a`. With
    /// `prefetch`, each step also asks for the same part of the rows about 32 KiB further on,
    /// into L2: the hardware prefetcher alone leaves the core waiting on memory between bursts
    /// of multiply-adds (measured on Zen 5: 15 GB/s from memory on two cores without, 24 with,
    /// of 26 that a plain sum reads at).
    @inlinable @inline(__always)
    public static func dotRowsX4<W: WeightElement>(
        _ rows: Int, _ a: UnsafePointer<Float>, _ k: Int, _ w: UnsafePointer<W>, _ ldw: Int,
        _ out: UnsafeMutablePointer<Float>, prefetch: Bool
    ) {
        let vb = vbytes, l = lanes
        let size = MemoryLayout<W>.stride
        let rowBytes = ldw * size
        let ahead = UnsafeRawPointer(w) + ((32768 + k * size - 1) / (k * size)) * rowBytes
        var c00 = V(), c01 = V(), c02 = V(), c03 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V()
        var c20 = V(), c21 = V(), c22 = V(), c23 = V(), c30 = V(), c31 = V(), c32 = V(), c33 = V()
        let ar = UnsafeRawPointer(a), wr = UnsafeRawPointer(w)
        let rb = k * 4
        var off = 0, e = 0
        let end = (k / l) * vb
        while off < end {
            if prefetch {
                let p = ahead + e * size
                rlhf_prefetch_l2(p); rlhf_prefetch_l2(p + rowBytes); rlhf_prefetch_l2(p + 2 * rowBytes); rlhf_prefetch_l2(p + 3 * rowBytes)
            }
            let w0 = wload(W.self, wr, e), w1 = wload(W.self, wr, e + ldw), w2 = wload(W.self, wr, e + 2 * ldw), w3 = wload(W.self, wr, e + 3 * ldw)
            let a0 = load(ar, off)
            c00 = madd(c00, a0, w0); c01 = madd(c01, a0, w1); c02 = madd(c02, a0, w2); c03 = madd(c03, a0, w3)
            let a1 = load(ar, off + rb)
            c10 = madd(c10, a1, w0); c11 = madd(c11, a1, w1); c12 = madd(c12, a1, w2); c13 = madd(c13, a1, w3)
            if rows > 2 {
                let a2 = load(ar, off + 2 * rb)
                c20 = madd(c20, a2, w0); c21 = madd(c21, a2, w1); c22 = madd(c22, a2, w2); c23 = madd(c23, a2, w3)
                let a3 = load(ar, off + 3 * rb)
                c30 = madd(c30, a3, w0); c31 = madd(c31, a3, w1); c32 = madd(c32, a3, w2); c33 = madd(c33, a3, w3)
            }
            off += vb
            e += l
        }
        out[0] = hsum(c00); out[1] = hsum(c01); out[2] = hsum(c02); out[3] = hsum(c03)
        out[4] = hsum(c10); out[5] = hsum(c11); out[6] = hsum(c12); out[7] = hsum(c13)
        if rows > 2 {
            out[8] = hsum(c20); out[9] = hsum(c21); out[10] = hsum(c22); out[11] = hsum(c23)
            out[12] = hsum(c30); out[13] = hsum(c31); out[14] = hsum(c32); out[15] = hsum(c33)
        }
        for p in (k / l) * l..<k {
            for i in 0..<rows { for r in 0..<4 { out[4 * i + r] += a[i * k + p] * W.scalar(wr, r * ldw + p) } }
        }
    }

    /// out[i] = a_i·w0 and out[8 + i] = a_i·w1 for the first `rows` (4 or 8, a constant) rows of
    /// `a` (k floats apart).
    @inlinable @inline(__always)
    public static func dotRows<W: WeightElement>(
        _ rows: Int, _ a: UnsafePointer<Float>, _ k: Int, _ w0: UnsafePointer<W>,
        _ w1: UnsafePointer<W>, _ out: UnsafeMutablePointer<Float>
    ) {
        let vb = vbytes, l = lanes
        var x0 = V(), x1 = V(), x2 = V(), x3 = V(), x4 = V(), x5 = V(), x6 = V(), x7 = V()
        var y0 = V(), y1 = V(), y2 = V(), y3 = V(), y4 = V(), y5 = V(), y6 = V(), y7 = V()
        let r0 = UnsafeRawPointer(w0), r1 = UnsafeRawPointer(w1), ar = UnsafeRawPointer(a)
        let rb = k * 4
        var off = 0, e = 0
        let end = (k / l) * vb
        while off < end {
            let u = wload(W.self, r0, e), v = wload(W.self, r1, e)
            let t0 = load(ar, off); x0 = madd(x0, t0, u); y0 = madd(y0, t0, v)
            let t1 = load(ar, off + rb); x1 = madd(x1, t1, u); y1 = madd(y1, t1, v)
            let t2 = load(ar, off + 2 * rb); x2 = madd(x2, t2, u); y2 = madd(y2, t2, v)
            let t3 = load(ar, off + 3 * rb); x3 = madd(x3, t3, u); y3 = madd(y3, t3, v)
            if rows > 4 {
                let t4 = load(ar, off + 4 * rb); x4 = madd(x4, t4, u); y4 = madd(y4, t4, v)
                let t5 = load(ar, off + 5 * rb); x5 = madd(x5, t5, u); y5 = madd(y5, t5, v)
                let t6 = load(ar, off + 6 * rb); x6 = madd(x6, t6, u); y6 = madd(y6, t6, v)
                let t7 = load(ar, off + 7 * rb); x7 = madd(x7, t7, u); y7 = madd(y7, t7, v)
            }
            off += vb
            e += l
        }
        out[0] = hsum(x0); out[1] = hsum(x1); out[2] = hsum(x2); out[3] = hsum(x3)
        out[8] = hsum(y0); out[9] = hsum(y1); out[10] = hsum(y2); out[11] = hsum(y3)
        if rows > 4 {
            out[4] = hsum(x4); out[5] = hsum(x5); out[6] = hsum(x6); out[7] = hsum(x7)
            out[12] = hsum(y4); out[13] = hsum(y5); out[14] = hsum(y6); out[15] = hsum(y7)
        }
        for p in (k / l) * l..<k {
            for i in 0..<rows { out[i] += a[i * k + p] * W.scalar(r0, p); out[8 + i] += a[i * k + p] * W.scalar(r1, p) }
        }
    }
}
