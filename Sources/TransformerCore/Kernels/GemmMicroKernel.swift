// Register-tiled AVX-512 micro-kernels. The main one keeps a 12×32 tile of C in 24 zmm
// accumulators: per k step two 16-wide loads of B, twelve broadcasts of A, 24 FMAs, which with 32
// zmm registers leaves room for the two B vectors and one broadcast; a larger tile would spill.

/// Rows of C per micro-tile.
let gemmMR = 12
/// Columns of C per micro-tile (two SIMD16 vectors).
let gemmNR = 32

/// How the micro-kernel combines its product with C.
enum TileMode { case overwrite, accumulate, bias }

/// C[0..<12, 0..<32] (=|+=) A·B over `kc` steps. `a` holds the 12 rows' values of each k
/// contiguously, `lda` floats apart (12 for a packed panel; a transposed operand can be read in
/// place), `b` a B panel with `ldb` floats between k rows (32 when packed). In `.bias` mode the tile
/// starts from `bias[0..<32]` broadcast down the rows.
@inline(never)
func microKernel12x32(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
                      _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode,
                      _ bias: UnsafePointer<Float>?, lda: Int = gemmMR) {
    tile32(rows: 12, kc, a, lda, b, ldb, c, ldc, mode, bias)
}

/// The body of the 32-column tiles, for `rows` 12 or 4 (a constant at each call, so the other
/// rows' accumulators and FMAs compile away): C[0..<rows, 0..<32] (=|+=) A·B, with A's `rows`
/// values of each k contiguous and `lda` floats apart, and B read unaligned, `ldb` floats per k.
@inline(__always)
private func tile32(rows: Int, _ kc: Int, _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int,
                    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode, _ bias: UnsafePointer<Float>?) {
    typealias V = SIMD16<Float>
    let cr = UnsafeMutableRawPointer(c)
    var c00 = V(), c01 = V(), c10 = V(), c11 = V(), c20 = V(), c21 = V(), c30 = V(), c31 = V(), c40 = V(), c41 = V(), c50 = V(), c51 = V(), c60 = V(), c61 = V(), c70 = V(), c71 = V(), c80 = V(), c81 = V(), c90 = V(), c91 = V(), c100 = V(), c101 = V(), c110 = V(), c111 = V()
    var ap = a
    var bp = UnsafeRawPointer(b)
    let bstride = ldb * 4
    var p = 0
    while p < kc {
        let b0 = bp.loadUnaligned(as: V.self), b1 = bp.loadUnaligned(fromByteOffset: 64, as: V.self)
        let a0 = V(repeating: ap[0])
        c00 = c00.addingProduct(a0, b0); c01 = c01.addingProduct(a0, b1)
        let a1 = V(repeating: ap[1])
        c10 = c10.addingProduct(a1, b0); c11 = c11.addingProduct(a1, b1)
        let a2 = V(repeating: ap[2])
        c20 = c20.addingProduct(a2, b0); c21 = c21.addingProduct(a2, b1)
        let a3 = V(repeating: ap[3])
        c30 = c30.addingProduct(a3, b0); c31 = c31.addingProduct(a3, b1)
        if rows == 12 {
            let a4 = V(repeating: ap[4])
            c40 = c40.addingProduct(a4, b0); c41 = c41.addingProduct(a4, b1)
            let a5 = V(repeating: ap[5])
            c50 = c50.addingProduct(a5, b0); c51 = c51.addingProduct(a5, b1)
            let a6 = V(repeating: ap[6])
            c60 = c60.addingProduct(a6, b0); c61 = c61.addingProduct(a6, b1)
            let a7 = V(repeating: ap[7])
            c70 = c70.addingProduct(a7, b0); c71 = c71.addingProduct(a7, b1)
            let a8 = V(repeating: ap[8])
            c80 = c80.addingProduct(a8, b0); c81 = c81.addingProduct(a8, b1)
            let a9 = V(repeating: ap[9])
            c90 = c90.addingProduct(a9, b0); c91 = c91.addingProduct(a9, b1)
            let a10 = V(repeating: ap[10])
            c100 = c100.addingProduct(a10, b0); c101 = c101.addingProduct(a10, b1)
            let a11 = V(repeating: ap[11])
            c110 = c110.addingProduct(a11, b0); c111 = c111.addingProduct(a11, b1)
        }
        ap += lda
        bp += bstride
        p += 1
    }
    switch mode {
    case .overwrite: break
    case .bias:
        let br = UnsafeRawPointer(bias!)
        let x0 = br.loadUnaligned(as: V.self), x1 = br.loadUnaligned(fromByteOffset: 64, as: V.self)
        c00 += x0; c01 += x1
        c10 += x0; c11 += x1
        c20 += x0; c21 += x1
        c30 += x0; c31 += x1
        if rows == 12 {
            c40 += x0; c41 += x1
            c50 += x0; c51 += x1
            c60 += x0; c61 += x1
            c70 += x0; c71 += x1
            c80 += x0; c81 += x1
            c90 += x0; c91 += x1
            c100 += x0; c101 += x1
            c110 += x0; c111 += x1
        }
    case .accumulate:
        c00 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4, as: V.self); c01 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 64, as: V.self)
        c10 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4, as: V.self); c11 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 64, as: V.self)
        c20 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4, as: V.self); c21 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 64, as: V.self)
        c30 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4, as: V.self); c31 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 64, as: V.self)
        if rows == 12 {
            c40 += cr.loadUnaligned(fromByteOffset: 4 * ldc * 4, as: V.self); c41 += cr.loadUnaligned(fromByteOffset: 4 * ldc * 4 + 64, as: V.self)
            c50 += cr.loadUnaligned(fromByteOffset: 5 * ldc * 4, as: V.self); c51 += cr.loadUnaligned(fromByteOffset: 5 * ldc * 4 + 64, as: V.self)
            c60 += cr.loadUnaligned(fromByteOffset: 6 * ldc * 4, as: V.self); c61 += cr.loadUnaligned(fromByteOffset: 6 * ldc * 4 + 64, as: V.self)
            c70 += cr.loadUnaligned(fromByteOffset: 7 * ldc * 4, as: V.self); c71 += cr.loadUnaligned(fromByteOffset: 7 * ldc * 4 + 64, as: V.self)
            c80 += cr.loadUnaligned(fromByteOffset: 8 * ldc * 4, as: V.self); c81 += cr.loadUnaligned(fromByteOffset: 8 * ldc * 4 + 64, as: V.self)
            c90 += cr.loadUnaligned(fromByteOffset: 9 * ldc * 4, as: V.self); c91 += cr.loadUnaligned(fromByteOffset: 9 * ldc * 4 + 64, as: V.self)
            c100 += cr.loadUnaligned(fromByteOffset: 10 * ldc * 4, as: V.self); c101 += cr.loadUnaligned(fromByteOffset: 10 * ldc * 4 + 64, as: V.self)
            c110 += cr.loadUnaligned(fromByteOffset: 11 * ldc * 4, as: V.self); c111 += cr.loadUnaligned(fromByteOffset: 11 * ldc * 4 + 64, as: V.self)
        }
    }
    cr.storeBytes(of: c00, toByteOffset: 0 * ldc * 4, as: V.self); cr.storeBytes(of: c01, toByteOffset: 0 * ldc * 4 + 64, as: V.self)
    cr.storeBytes(of: c10, toByteOffset: 1 * ldc * 4, as: V.self); cr.storeBytes(of: c11, toByteOffset: 1 * ldc * 4 + 64, as: V.self)
    cr.storeBytes(of: c20, toByteOffset: 2 * ldc * 4, as: V.self); cr.storeBytes(of: c21, toByteOffset: 2 * ldc * 4 + 64, as: V.self)
    cr.storeBytes(of: c30, toByteOffset: 3 * ldc * 4, as: V.self); cr.storeBytes(of: c31, toByteOffset: 3 * ldc * 4 + 64, as: V.self)
    if rows == 12 {
        cr.storeBytes(of: c40, toByteOffset: 4 * ldc * 4, as: V.self); cr.storeBytes(of: c41, toByteOffset: 4 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c50, toByteOffset: 5 * ldc * 4, as: V.self); cr.storeBytes(of: c51, toByteOffset: 5 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c60, toByteOffset: 6 * ldc * 4, as: V.self); cr.storeBytes(of: c61, toByteOffset: 6 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c70, toByteOffset: 7 * ldc * 4, as: V.self); cr.storeBytes(of: c71, toByteOffset: 7 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c80, toByteOffset: 8 * ldc * 4, as: V.self); cr.storeBytes(of: c81, toByteOffset: 8 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c90, toByteOffset: 9 * ldc * 4, as: V.self); cr.storeBytes(of: c91, toByteOffset: 9 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c100, toByteOffset: 10 * ldc * 4, as: V.self); cr.storeBytes(of: c101, toByteOffset: 10 * ldc * 4 + 64, as: V.self)
        cr.storeBytes(of: c110, toByteOffset: 11 * ldc * 4, as: V.self); cr.storeBytes(of: c111, toByteOffset: 11 * ldc * 4 + 64, as: V.self)
    }
}

/// Columns of C per 4-row decode micro-tile (six SIMD16 vectors).
let decodeNR4 = 96

/// Decode-sized variant: C[0..<4, 0..<96] (=|+=) A·B with B read in place (`ldb` floats between
/// k rows), for products with a handful of rows (one per sequence being sampled), which stream
/// the weights from memory: 384 contiguous bytes of each B row per tile. `a` holds 4 floats per k.
@inline(never)
func microKernel4x96(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode,
                     _ bias: UnsafePointer<Float>?) {
    typealias V = SIMD16<Float>
    let cr = UnsafeMutableRawPointer(c)
    var c00 = V(), c01 = V(), c02 = V(), c03 = V(), c04 = V(), c05 = V(), c10 = V(), c11 = V(), c12 = V(), c13 = V(), c14 = V(), c15 = V(), c20 = V(), c21 = V(), c22 = V(), c23 = V(), c24 = V(), c25 = V(), c30 = V(), c31 = V(), c32 = V(), c33 = V(), c34 = V(), c35 = V()
    var ap = a
    var bp = UnsafeRawPointer(b)
    let bstride = ldb * 4
    var p = 0
    while p < kc {
        let b0 = bp.loadUnaligned(fromByteOffset: 0, as: V.self); let b1 = bp.loadUnaligned(fromByteOffset: 64, as: V.self); let b2 = bp.loadUnaligned(fromByteOffset: 128, as: V.self); let b3 = bp.loadUnaligned(fromByteOffset: 192, as: V.self); let b4 = bp.loadUnaligned(fromByteOffset: 256, as: V.self); let b5 = bp.loadUnaligned(fromByteOffset: 320, as: V.self)
        let a0 = V(repeating: ap[0])
        c00 = c00.addingProduct(a0, b0); c01 = c01.addingProduct(a0, b1); c02 = c02.addingProduct(a0, b2); c03 = c03.addingProduct(a0, b3); c04 = c04.addingProduct(a0, b4); c05 = c05.addingProduct(a0, b5)
        let a1 = V(repeating: ap[1])
        c10 = c10.addingProduct(a1, b0); c11 = c11.addingProduct(a1, b1); c12 = c12.addingProduct(a1, b2); c13 = c13.addingProduct(a1, b3); c14 = c14.addingProduct(a1, b4); c15 = c15.addingProduct(a1, b5)
        let a2 = V(repeating: ap[2])
        c20 = c20.addingProduct(a2, b0); c21 = c21.addingProduct(a2, b1); c22 = c22.addingProduct(a2, b2); c23 = c23.addingProduct(a2, b3); c24 = c24.addingProduct(a2, b4); c25 = c25.addingProduct(a2, b5)
        let a3 = V(repeating: ap[3])
        c30 = c30.addingProduct(a3, b0); c31 = c31.addingProduct(a3, b1); c32 = c32.addingProduct(a3, b2); c33 = c33.addingProduct(a3, b3); c34 = c34.addingProduct(a3, b4); c35 = c35.addingProduct(a3, b5)
        ap += 4
        bp += bstride
        p += 1
    }
    switch mode {
    case .overwrite: break
    case .bias:
        let br = UnsafeRawPointer(bias!)
        let x0 = br.loadUnaligned(fromByteOffset: 0, as: V.self); let x1 = br.loadUnaligned(fromByteOffset: 64, as: V.self); let x2 = br.loadUnaligned(fromByteOffset: 128, as: V.self); let x3 = br.loadUnaligned(fromByteOffset: 192, as: V.self); let x4 = br.loadUnaligned(fromByteOffset: 256, as: V.self); let x5 = br.loadUnaligned(fromByteOffset: 320, as: V.self)
        c00 += x0; c01 += x1; c02 += x2; c03 += x3; c04 += x4; c05 += x5
        c10 += x0; c11 += x1; c12 += x2; c13 += x3; c14 += x4; c15 += x5
        c20 += x0; c21 += x1; c22 += x2; c23 += x3; c24 += x4; c25 += x5
        c30 += x0; c31 += x1; c32 += x2; c33 += x3; c34 += x4; c35 += x5
    case .accumulate:
        c00 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 0, as: V.self); c01 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 64, as: V.self); c02 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 128, as: V.self); c03 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 192, as: V.self); c04 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 256, as: V.self); c05 += cr.loadUnaligned(fromByteOffset: 0 * ldc * 4 + 320, as: V.self)
        c10 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 0, as: V.self); c11 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 64, as: V.self); c12 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 128, as: V.self); c13 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 192, as: V.self); c14 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 256, as: V.self); c15 += cr.loadUnaligned(fromByteOffset: 1 * ldc * 4 + 320, as: V.self)
        c20 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 0, as: V.self); c21 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 64, as: V.self); c22 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 128, as: V.self); c23 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 192, as: V.self); c24 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 256, as: V.self); c25 += cr.loadUnaligned(fromByteOffset: 2 * ldc * 4 + 320, as: V.self)
        c30 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 0, as: V.self); c31 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 64, as: V.self); c32 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 128, as: V.self); c33 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 192, as: V.self); c34 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 256, as: V.self); c35 += cr.loadUnaligned(fromByteOffset: 3 * ldc * 4 + 320, as: V.self)
    }
    cr.storeBytes(of: c00, toByteOffset: 0 * ldc * 4 + 0, as: V.self); cr.storeBytes(of: c01, toByteOffset: 0 * ldc * 4 + 64, as: V.self); cr.storeBytes(of: c02, toByteOffset: 0 * ldc * 4 + 128, as: V.self); cr.storeBytes(of: c03, toByteOffset: 0 * ldc * 4 + 192, as: V.self); cr.storeBytes(of: c04, toByteOffset: 0 * ldc * 4 + 256, as: V.self); cr.storeBytes(of: c05, toByteOffset: 0 * ldc * 4 + 320, as: V.self)
    cr.storeBytes(of: c10, toByteOffset: 1 * ldc * 4 + 0, as: V.self); cr.storeBytes(of: c11, toByteOffset: 1 * ldc * 4 + 64, as: V.self); cr.storeBytes(of: c12, toByteOffset: 1 * ldc * 4 + 128, as: V.self); cr.storeBytes(of: c13, toByteOffset: 1 * ldc * 4 + 192, as: V.self); cr.storeBytes(of: c14, toByteOffset: 1 * ldc * 4 + 256, as: V.self); cr.storeBytes(of: c15, toByteOffset: 1 * ldc * 4 + 320, as: V.self)
    cr.storeBytes(of: c20, toByteOffset: 2 * ldc * 4 + 0, as: V.self); cr.storeBytes(of: c21, toByteOffset: 2 * ldc * 4 + 64, as: V.self); cr.storeBytes(of: c22, toByteOffset: 2 * ldc * 4 + 128, as: V.self); cr.storeBytes(of: c23, toByteOffset: 2 * ldc * 4 + 192, as: V.self); cr.storeBytes(of: c24, toByteOffset: 2 * ldc * 4 + 256, as: V.self); cr.storeBytes(of: c25, toByteOffset: 2 * ldc * 4 + 320, as: V.self)
    cr.storeBytes(of: c30, toByteOffset: 3 * ldc * 4 + 0, as: V.self); cr.storeBytes(of: c31, toByteOffset: 3 * ldc * 4 + 64, as: V.self); cr.storeBytes(of: c32, toByteOffset: 3 * ldc * 4 + 128, as: V.self); cr.storeBytes(of: c33, toByteOffset: 3 * ldc * 4 + 192, as: V.self); cr.storeBytes(of: c34, toByteOffset: 3 * ldc * 4 + 256, as: V.self); cr.storeBytes(of: c35, toByteOffset: 3 * ldc * 4 + 320, as: V.self)
}

/// The 4-row decode kernel's narrow sibling for the last n mod 96 columns: C[0..<4, 0..<32],
/// `a` holding 4 floats per k.
@inline(never)
func microKernel4x32(_ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ ldb: Int,
                     _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode,
                     _ bias: UnsafePointer<Float>?) {
    tile32(rows: 4, kc, a, 4, b, ldb, c, ldc, mode, bias)
}
