import CPUFeatures
import KernelBodies
import Synchronization

// Part of this module's interface (bfloat16 operands and frozen weights).
@_exported import struct KernelBodies.BFloat16

/// A strided, read-only matrix operand: element (i, j) is at `base[i * rowStride + j * colStride]`.
///
/// Transposes are expressed by swapping the strides, so one GEMM serves forward (x·W),
/// input gradients (dy·Wᵀ) and weight gradients (xᵀ·dy) without copying. The elements are
/// floats (`MatrixOperand`), or bfloat16 for B (`BF16MatrixOperand`: frozen weights held at
/// half size, widened to floats as the kernels load them).
public struct StridedMatrix<Element> {
    /// First element.
    public var base: UnsafePointer<Element>
    /// Distance in elements between consecutive rows of the operand as used in the product.
    public var rowStride: Int
    /// Distance in elements between consecutive columns.
    public var colStride: Int

    public init(base: UnsafePointer<Element>, rowStride: Int, colStride: Int) {
        self.base = base; self.rowStride = rowStride; self.colStride = colStride
    }
    /// A row-major matrix with `columns` elements per row.
    public static func rowMajor(_ p: UnsafePointer<Element>, columns: Int) -> StridedMatrix {
        StridedMatrix(base: p, rowStride: columns, colStride: 1)
    }
    /// The transpose of a row-major matrix that has `columns` elements per row.
    public static func transposed(_ p: UnsafePointer<Element>, columns: Int) -> StridedMatrix {
        StridedMatrix(base: p, rowStride: 1, colStride: columns)
    }
}

public typealias MatrixOperand = StridedMatrix<Float>
public typealias BF16MatrixOperand = StridedMatrix<BFloat16>

/// B's element type as the product's drivers see it: how to read it and which decode kernels
/// stream it.
protocol GemmElement: WeightElement {
    typealias Tile = (
        _ kc: Int, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Self>, _ ldb: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode, _ bias: UnsafePointer<Float>?
    ) -> Void
    /// The 4-row tile two vectors wide, A packed 4 floats per k.
    static func tile4(_ k: KernelTable) -> Tile
    /// The 4-row decode tile, `decodeNR` columns.
    static func decodeTile(_ k: KernelTable) -> Tile
    static func dotRows8x2(_ k: KernelTable) -> (UnsafePointer<Float>, Int, UnsafePointer<Self>, UnsafePointer<Self>, UnsafeMutablePointer<Float>) ->
        Void
    static func dotRows4x4(_ k: KernelTable) -> (UnsafePointer<Float>, Int, UnsafePointer<Self>, Int, UnsafeMutablePointer<Float>) -> Void
}

extension Float: GemmElement {
    static func tile4(_ k: KernelTable) -> Tile { k.gemmTile4 }
    static func decodeTile(_ k: KernelTable) -> Tile { k.decodeTile }
    static func dotRows8x2(_ k: KernelTable) -> (UnsafePointer<Float>, Int, UnsafePointer<Float>, UnsafePointer<Float>, UnsafeMutablePointer<Float>)
        -> Void
    { k.dotRows8x2 }
    static func dotRows4x4(_ k: KernelTable) -> (UnsafePointer<Float>, Int, UnsafePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void {
        k.dotRows4x4
    }
}

extension BFloat16: GemmElement {
    static func tile4(_ k: KernelTable) -> Tile { k.bf16.gemmTile4 }
    static func decodeTile(_ k: KernelTable) -> Tile { k.bf16.decodeTile }
    static func dotRows8x2(_ k: KernelTable) -> (
        UnsafePointer<Float>, Int, UnsafePointer<BFloat16>, UnsafePointer<BFloat16>, UnsafeMutablePointer<Float>
    ) -> Void { k.bf16.dotRows8x2 }
    static func dotRows4x4(_ k: KernelTable) -> (UnsafePointer<Float>, Int, UnsafePointer<BFloat16>, Int, UnsafeMutablePointer<Float>) -> Void {
        k.bf16.dotRows4x4
    }
}

/// Single-precision matrix multiplication, BLIS-style: B is packed in KC×NC blocks shared by
/// the workers, each worker packs its own MC×KC block of A, and the active path's micro-kernel
/// (12×32 on AVX-512, 6×16 on AVX2) runs over the packed panels. Decode-sized products (a
/// handful of rows) skip packing B, which would cost more than the product itself.
///
/// Its packing buffers are per worker and per `Parallel.isolated` part, so products may run in
/// the parts of an isolated region at once, but not on two threads otherwise.
public enum Gemm {
    static let kc = 256
    static let mc = 96 // 8 panels of 12 rows or 16 of 6: A block = 96 KiB, resident in L2
    static let nc = 4096 // B block = 256 × 4096 floats = 4 MiB, resident in L3
    /// Below this many multiply-adds a product runs on one thread.
    static let parallelThreshold = 1 << 20

    static let packedB = ScratchSet()
    static let packedA = ScratchSet()
    static let edgeTiles = ScratchSet()

    /// C(m×n) = A(m×k)·B(k×n) [+ bias(n) broadcast over rows] [+ C if `accumulate`].
    /// `ldc` is the row stride of C.
    ///
    /// In `--precision bf16` (`Kernels.precision`) the operands are rounded to bfloat16 and the
    /// products summed in single precision (see `bf16Product`). Pass `weight: true` when B is a
    /// weight that stays as it is until the optimizer reports a change (`weightsChanged`): it is
    /// then packed once and reused.
    public static func multiply(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: MatrixOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool = false, bias: UnsafePointer<Float>? = nil, weight: Bool = false
    ) {
        product(m: m, n: n, k: k, a: a, b: b, c: c, ldc: ldc, accumulate: accumulate, bias: bias, weight: weight)
    }

    /// The product with B in bfloat16 (frozen weights held at half size): the decode-sized
    /// kernels widen B as they stream it, and the blocked path widens it as it packs it, so the
    /// micro-kernels are the single-precision ones and the result is that of `multiply` on B
    /// widened to floats.
    public static func multiply(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: BF16MatrixOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int,
        accumulate: Bool = false, bias: UnsafePointer<Float>? = nil, weight: Bool = false
    ) {
        product(m: m, n: n, k: k, a: a, b: b, c: c, ldc: ldc, accumulate: accumulate, bias: bias, weight: weight)
    }

    static func product<W: GemmElement>(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: StridedMatrix<W>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, bias: UnsafePointer<Float>?, weight: Bool
    ) {
        if m == 0 || n == 0 { return }
        if k == 0 {
            for i in 0..<m where !accumulate {
                for j in 0..<n { c[i * ldc + j] = bias?[j] ?? 0 }
            }
            return
        }
        // Inside an isolated part the product runs on its thread alone; splitting it into tasks
        // would only pack A once per task for nothing.
        let threads = !Parallel.insideIsolatedPart && m * n * k >= parallelThreshold ? Parallel.threadCount : 1
        if Kernels.precision == .bf16 {
            bf16Product(m: m, n: n, k: k, a: a, b: b, c: c, ldc: ldc, accumulate: accumulate, bias: bias, weight: weight, threads: threads)
            return
        }
        let kern = Kernels.active
        let gemmMR = kern.gemmMR
        if m <= 8 && b.colStride == 1 && n >= kern.decodeNR {
            decodeRowMajorB(m: m, n: n, k: k, a: a, b: b, c: c, ldc: ldc, accumulate: accumulate, bias: bias, threads: threads)
            return
        }
        // Two row panels or fewer (at least 12 rows): B read in place rather than packed (when
        // it holds floats: bfloat16 is widened once per product by packing it instead).
        if m <= 2 * max(gemmMR, 6) {
            if b.colStride == 1, let fb = b as? MatrixOperand {
                smallMRowMajorB(m: m, n: n, k: k, a: a, b: fb, c: c, ldc: ldc, accumulate: accumulate, bias: bias, threads: threads)
                return
            }
            if b.rowStride == 1 && m <= 8 {
                smallMTransposedB(
                    m: m, n: n, k: k, a: a, b: b, c: c, ldc: ldc,
                    accumulate: accumulate, bias: bias, threads: threads)
                return
            }
        }
        blocked(
            m: m, n: n, k: k, a: a, b: b, c: c, ldc: ldc, accumulate: accumulate,
            bias: bias, threads: threads, weight: weight)
    }

    /// Open `keepingPackedWeights` scopes.
    static let keepingScopes = Atomic<Int>(0)

    /// Runs `body` with the weight operands of the single-precision products (`weight: true`)
    /// packed once, whole, and kept until they change or the last such scope closes, instead of
    /// packed again by every product. For sampling: each decode step multiplies a few dozen rows
    /// by every weight, and packing a weight costs more than such a product. The copies take as
    /// much memory as the weights they pack, up to 4 GiB (weights past that are packed by each
    /// product, as outside a scope), and are freed when the last scope closes.
    public static func keepingPackedWeights<T>(_ body: () throws -> T) rethrows -> T {
        keepingScopes.add(1, ordering: .relaxed)
        defer {
            if keepingScopes.subtract(1, ordering: .relaxed).newValue == 0 { PackedWeights.sampling.removeAll() }
        }
        return try body()
    }

    /// Floats held in packed copies of weights by `keepingPackedWeights` scopes (for memory
    /// reports and tests).
    public static var keptPackedFloatCount: Int { PackedWeights.sampling.bytes / 4 }

    /// Packs B's rows pc..<pc+kc, columns jc..<jc+n into panels of `width` columns (panel q at
    /// `bp + q·width·kc`, the last zero-padded), on `threads` workers.
    static func packBBlock<W: GemmElement>(
        _ b: StridedMatrix<W>, pc: Int, kc: Int, jc: Int, n: Int, width: Int, into bp: UnsafeMutablePointer<Float>, threads: Int
    ) {
        if b.colStride == 1 {
            // Row-major B: each worker packs whole rows of the block into every panel, so
            // memory is read in order (one panel per task read a few lines of each row).
            Parallel.forEachTask(threads, threads: threads) { part, _ in
                packBRows(b, p0: pc, rows: kc * part / threads..<kc * (part + 1) / threads, kc: kc, j0: jc, n: n, width: width, into: bp)
            }
        } else {
            let panels = (n + width - 1) / width
            Parallel.forEachTask(panels, threads: threads) { panel, _ in
                packB(b, p0: pc, kc: kc, j0: jc + panel * width, nValid: min(width, n - panel * width), width: width, into: bp + panel * width * kc)
            }
        }
    }

    // MARK: - The blocked path

    static func blocked<W: GemmElement>(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: StridedMatrix<W>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
        bias: UnsafePointer<Float>?, threads: Int, weight: Bool = false
    ) {
        let kern = Kernels.active
        let gemmMR = kern.gemmMR, gemmNR = kern.gemmNR
        // For the static split (one thread, or when columns are split too): row blocks of at most
        // mc rows, in whole panels of gemmMR rows, and as many blocks as a multiple of the worker
        // count, so that no worker gets a block more than another (1024 rows: 12 blocks of 84–96
        // rows instead of 10 of 96 and one of 64). With rows enough, the workers claim them below.
        let mPanels = (m + gemmMR - 1) / gemmMR
        var mBlocks = (mPanels + mc / gemmMR - 1) / (mc / gemmMR)
        // All rows in one block, with columns enough for every worker to take a share (sampling's
        // few dozen rows): the workers split the columns only, so each streams its share of B once
        // and packs every row of A, rather than reading each B panel once per block of rows.
        let splitColumns = threads > 1 && m <= mc && (min(n, nc) + gemmNR - 1) / gemmNR >= 4 * threads
        if threads > 1 && !splitColumns { mBlocks = min(mPanels, (mBlocks + threads - 1) / threads * threads) }
        let chunks = ChunkCounter()
        // Inside a `keepingPackedWeights` scope a weight is packed once, whole, and kept (for
        // products of a few blocks of rows: with many, packing costs little beside the product).
        let kept =
            weight && m <= 4 * mc && keepingScopes.load(ordering: .relaxed) > 0
            ? PackedWeights.sampling.panels(b, k: k, n: n, width: gemmNR, threads: threads) : nil
        // Rows i0 ..< i0 + mcur (i0 a multiple of gemmMR) of columns jc ..< jc + ncur against
        // their B panels pLo ..< pHi over k rows pc ..< pc + kcur (packed at bp), on `worker`'s
        // scratch. Each tile's arithmetic depends only on where it lies, not on how the rows were
        // grouped, so any split gives the same bits.
        func block(
            jc: Int, ncur: Int, pc: Int, kcur: Int, bp: UnsafeMutablePointer<Float>,
            i0: Int, mcur: Int, worker: Int, pLo: Int, pHi: Int
        ) {
            let panels = (ncur + gemmNR - 1) / gemmNR
            let mode: TileMode = (pc > 0 || accumulate) ? .accumulate : (bias != nil ? .bias : .overwrite)
            let biasBase = bias.map { $0 + jc }
            let ap = packedA(worker).floats(((mcur + gemmMR - 1) / gemmMR) * gemmMR * kcur)
            packA(a, i0: i0, mc: mcur, p0: pc, kc: kcur, width: gemmMR, into: ap)
            let tile = edgeTiles(worker).floats(gemmMR * gemmNR)
            let rowPanels = (mcur + gemmMR - 1) / gemmMR
            // After the last panel, a kept weight's next block of k rows for the same panels.
            let kNext = min(kc, k - pc - kcur)
            let nextBlock = kept.flatMap { kNext > 0 ? $0.floats + jc * k + (pc + kcur) * panels * gemmNR + pLo * gemmNR * kNext : nil }
            for panel in pLo..<pHi {
                let j = panel * gemmNR
                let nValid = min(gemmNR, ncur - j)
                // The next B panel, a share per row panel, into L2 while this one runs: a kept
                // weight comes from memory, and the hardware prefetcher stops at every 4 KiB page.
                let last = panel + 1 == pHi
                let next = last ? nextBlock.map { UnsafeRawPointer($0) } : UnsafeRawPointer(bp + (panel + 1) * gemmNR * kcur)
                let panelBytes = gemmNR * (last ? kNext : kcur) * 4
                var ir = 0, share = 0
                while ir < mcur {
                    if let next {
                        let lo = panelBytes * share / rowPanels, hi = panelBytes * (share + 1) / rowPanels
                        if hi > lo { prefetchLines(next + lo, bytes: hi - lo) }
                        share += 1
                    }
                    let mValid = min(gemmMR, mcur - ir), width = kern.panelWidth(mValid)
                    let cTile = c + (i0 + ir) * ldc + jc + j
                    let aPanel = UnsafePointer(ap + ir * kcur)
                    let kernel = kern.tile(width: width)
                    if mValid == width && nValid == gemmNR {
                        kernel(kcur, aPanel, bp + panel * gemmNR * kcur, gemmNR, cTile, ldc, mode, biasBase.map { $0 + j })
                    } else {
                        kernel(kcur, aPanel, bp + panel * gemmNR * kcur, gemmNR, tile, gemmNR, .overwrite, nil)
                        storeEdge(tile, mValid, nValid, cTile, ldc, mode, biasBase.map { $0 + j }, tileStride: gemmNR)
                    }
                    ir += gemmMR
                }
            }
        }
        if splitColumns, let kept {
            // A kept weight needs no packing between blocks of k, and each worker owns its
            // columns of C: every worker runs its share of the columns through all of k in one
            // task, rather than the workers meeting after every block.
            Parallel.forEachTask(threads, threads: threads) { part, worker in
                var jc = 0
                while jc < n {
                    let ncur = min(nc, n - jc)
                    let panels = (ncur + gemmNR - 1) / gemmNR, nParts = min(panels, threads)
                    var pc = 0
                    while pc < k && part < nParts {
                        let kcur = min(kc, k - pc)
                        block(
                            jc: jc, ncur: ncur, pc: pc, kcur: kcur, bp: kept.floats + jc * k + pc * panels * gemmNR, i0: 0, mcur: m,
                            worker: worker, pLo: panels * part / nParts, pHi: panels * (part + 1) / nParts)
                        pc += kcur
                    }
                    jc += ncur
                }
            }
            return
        }
        var jc = 0
        while jc < n {
            let ncur = min(nc, n - jc)
            let panels = (ncur + gemmNR - 1) / gemmNR
            // Split columns too when there are too few row blocks to keep every worker busy.
            let nParts = splitColumns ? min(panels, threads) : (mBlocks >= 2 * threads ? 1 : min(panels, threads))
            var pc = 0
            while pc < k {
                let kcur = min(kc, k - pc)
                let bp: UnsafeMutablePointer<Float>
                if let kept {
                    bp = kept.floats + jc * k + pc * panels * gemmNR
                } else {
                    bp = packedB(0).floats(panels * gemmNR * kcur)
                    packBBlock(b, pc: pc, kc: kcur, jc: jc, n: ncur, width: gemmNR, into: bp, threads: threads)
                }
                if nParts == 1 && threads > 1 {
                    // The workers take runs of row panels as they come free: up to a block of mc
                    // rows while much is left, then shorter runs, so they finish within a panel or
                    // so of each other (equal static shares left one waiting on the other for
                    // several panels per product, and on a busy machine for longer).
                    chunks.next.store(0, ordering: .relaxed)
                    Parallel.forEachTask(threads, threads: threads) { _, worker in
                        while true {
                            var start = chunks.next.load(ordering: .relaxed), size = 0
                            while true {
                                guard start < mPanels else { return }
                                size = min(mc / gemmMR, max(1, (mPanels - start) / (2 * threads)))
                                let (done, seen) = chunks.next.compareExchange(expected: start, desired: start + size, ordering: .relaxed)
                                if done { break }
                                start = seen
                            }
                            let i0 = start * gemmMR
                            block(
                                jc: jc, ncur: ncur, pc: pc, kcur: kcur, bp: bp, i0: i0, mcur: min((start + size) * gemmMR, m) - i0,
                                worker: worker, pLo: 0, pHi: panels)
                        }
                    }
                } else {
                    Parallel.forEachTask(mBlocks * nParts, threads: threads) { task, worker in
                        let mb = task / nParts, part = task % nParts
                        let i0 = mPanels * mb / mBlocks * gemmMR
                        let mcur = min(mPanels * (mb + 1) / mBlocks * gemmMR, m) - i0
                        block(
                            jc: jc, ncur: ncur, pc: pc, kcur: kcur, bp: bp, i0: i0, mcur: mcur, worker: worker,
                            pLo: panels * part / nParts, pHi: panels * (part + 1) / nParts)
                    }
                }
                pc += kcur
            }
            jc += ncur
        }
    }

    /// Adds or stores the valid corner of a micro-tile whose rows are `tileStride` floats apart.
    @inline(__always)
    static func storeEdge(
        _ tile: UnsafeMutablePointer<Float>, _ mValid: Int, _ nValid: Int,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode,
        _ bias: UnsafePointer<Float>?, tileStride: Int
    ) {
        for i in 0..<mValid {
            let t = tile + i * tileStride, row = c + i * ldc
            switch mode {
            case .overwrite: for j in 0..<nValid { row[j] = t[j] }
            case .accumulate: for j in 0..<nValid { row[j] += t[j] }
            case .bias: for j in 0..<nValid { row[j] = t[j] + bias![j] }
            }
        }
    }

    /// Packs rows i0..<i0+mc, columns p0..<p0+kc of A into panels of `width` rows (`width` floats
    /// per k), panel q at `ap + q·width·kc`; a last, partial panel at the narrower width of its
    /// tile (`KernelTable.panelWidth`), zero-padded.
    @inline(__always)
    static func packA(_ a: MatrixOperand, i0: Int, mc: Int, p0: Int, kc: Int, width gemmMR: Int, into ap: UnsafeMutablePointer<Float>) {
        let rs = a.rowStride, cs = a.colStride
        let kern = Kernels.active
        if rs == 1 && cs != 1 {
            // Transposed A: each k holds the block's rows contiguously. Walk k outermost, so each
            // k's rows are read once, in order, and dealt out to the panels (panel by panel, every
            // k of a panel is another page: a TLB miss per k when the rows are long).
            let full = mc / gemmMR * gemmMR
            for p in 0..<kc {
                let src = a.base + (p0 + p) * cs + i0
                // Each k is another row of X, usually out of cache and on another page, where the
                // hardware prefetcher stops: ask for the rows of the k eight steps on meanwhile.
                if p + 8 < kc { prefetchLines(UnsafeRawPointer(src + 8 * cs), bytes: mc * 4) }
                var ir = 0
                while ir < full {
                    copyFloats(ap + ir * kc + p * gemmMR, src + ir, gemmMR)
                    ir += gemmMR
                }
                if full < mc {
                    let w = kern.panelWidth(mc - full), dst = ap + full * kc + p * w
                    for ii in 0..<w { dst[ii] = full + ii < mc ? src[full + ii] : 0 }
                }
            }
            return
        }
        var ir = 0
        while ir < mc {
            let panel = ap + ir * kc
            let rows = min(gemmMR, mc - ir), w = kern.panelWidth(rows)
            if cs == 1 {
                // Row-major A: walk the panel's rows side by side, writing a panel's floats per k
                // contiguously. (Row by row, the compiler turns the strided writes into slow scatters.)
                // The next panel's rows are asked for meanwhile: they usually come from memory.
                if ir + gemmMR < mc {
                    let next = UnsafeRawPointer(a.base + (i0 + ir + gemmMR) * rs + p0)
                    for r in 0..<min(gemmMR, mc - ir - gemmMR) { prefetchLines(next + r * rs * 4, bytes: kc * 4) }
                }
                gatherRows(a.base + (i0 + ir) * rs + p0, rs, rows: rows, width: w, kc: kc, panel)
            } else {
                for p in 0..<kc {
                    let src = a.base + (p0 + p) * cs + (i0 + ir) * rs
                    for ii in 0..<rows { panel[p * w + ii] = src[ii * rs] }
                }
            }
            if rows < w {
                for p in 0..<kc { for ii in rows..<w { panel[p * w + ii] = 0 } }
            }
            ir += gemmMR
        }
    }

    /// Asks for every cache line of `bytes` bytes from `p` into L2 (a hint: never faults).
    @inline(__always)
    static func prefetchLines(_ p: UnsafeRawPointer, bytes: Int) {
        var o = 0
        while o < bytes { rlhf_prefetch_l2(p + o); o += 64 }
        rlhf_prefetch_l2(p + bytes - 1)
    }

    /// dst[p·width + i] = src[i·stride + p] for i < rows (≤ width), p < kc: `rows` source rows
    /// read side by side, so reads stay sequential per row and writes are contiguous.
    @inline(__always)
    static func gatherRows<W: WeightElement>(
        _ src: UnsafePointer<W>, _ stride: Int, rows: Int, width: Int, kc: Int,
        _ dst: UnsafeMutablePointer<Float>
    ) {
        typealias V4 = SIMD4<Float>
        let size = MemoryLayout<W>.stride
        var i = 0
        // Four rows per pass keeps four read streams and the loop free of per-element branches;
        // four steps at a time, as a 4×4 transpose in registers (four loads, four stores).
        while i + 4 <= rows {
            let r0 = UnsafeRawPointer(src + i * stride), r1 = r0 + stride * size, r2 = r1 + stride * size, r3 = r2 + stride * size
            let d = UnsafeMutableRawPointer(dst + i)
            var p = 0
            while p + 4 <= kc {
                let x0 = W.four(r0, p), x1 = W.four(r1, p)
                let x2 = W.four(r2, p), x3 = W.four(r3, p)
                let w = width * 4 * p
                d.storeBytes(of: V4(x0[0], x1[0], x2[0], x3[0]), toByteOffset: w, as: V4.self)
                d.storeBytes(of: V4(x0[1], x1[1], x2[1], x3[1]), toByteOffset: w + width * 4, as: V4.self)
                d.storeBytes(of: V4(x0[2], x1[2], x2[2], x3[2]), toByteOffset: w + width * 8, as: V4.self)
                d.storeBytes(of: V4(x0[3], x1[3], x2[3], x3[3]), toByteOffset: w + width * 12, as: V4.self)
                p += 4
            }
            while p < kc {
                let q = dst + i + p * width
                q[0] = W.scalar(r0, p); q[1] = W.scalar(r1, p); q[2] = W.scalar(r2, p); q[3] = W.scalar(r3, p)
                p += 1
            }
            i += 4
        }
        // Two rows left (the last two of AVX2's 6-row panels): pairs, four steps at a time.
        if i + 2 <= rows {
            typealias V2 = SIMD2<Float>
            let r0 = UnsafeRawPointer(src + i * stride), r1 = r0 + stride * size
            let d = UnsafeMutableRawPointer(dst + i)
            var p = 0
            while p + 4 <= kc {
                let x0 = W.four(r0, p), x1 = W.four(r1, p)
                let w = width * 4 * p
                d.storeBytes(of: V2(x0[0], x1[0]), toByteOffset: w, as: V2.self)
                d.storeBytes(of: V2(x0[1], x1[1]), toByteOffset: w + width * 4, as: V2.self)
                d.storeBytes(of: V2(x0[2], x1[2]), toByteOffset: w + width * 8, as: V2.self)
                d.storeBytes(of: V2(x0[3], x1[3]), toByteOffset: w + width * 12, as: V2.self)
                p += 4
            }
            while p < kc {
                let q = dst + i + p * width
                q[0] = W.scalar(r0, p); q[1] = W.scalar(r1, p)
                p += 1
            }
            i += 2
        }
        while i < rows {
            let r = UnsafeRawPointer(src + i * stride)
            for p in 0..<kc { dst[p * width + i] = W.scalar(r, p) }
            i += 1
        }
    }

    /// Packs rows `rows` (of the kc rows from p0) of columns j0..<j0+n of a row-major B into the
    /// panels of `width` columns that `packB` writes (panel q at `bp + q·width·kc`), zero-padding
    /// the last panel.
    @inline(__always)
    static func packBRows<W: GemmElement>(
        _ b: StridedMatrix<W>, p0: Int, rows: Range<Int>, kc: Int, j0: Int, n: Int,
        width gemmNR: Int, into bp: UnsafeMutablePointer<Float>
    ) {
        let rs = b.rowStride
        let panels = (n + gemmNR - 1) / gemmNR
        let raw = UnsafeRawPointer(b.base), floats = b.base as? UnsafePointer<Float>
        // B usually comes from memory (the weights, or activations written long before). The
        // hardware prefetcher stops at each 4 KiB page, so ask for the row about 8 KiB ahead.
        let size = MemoryLayout<W>.stride, rowBytes = n * size
        let ahead = max(1, (8192 + rowBytes - 1) / rowBytes) * rs * size
        for p in rows {
            let src = (p0 + p) * rs + j0
            prefetchLines(raw + src * size + ahead, bytes: rowBytes)
            for q in 0..<panels {
                let dst = bp + q * gemmNR * kc + p * gemmNR
                let valid = min(gemmNR, n - q * gemmNR)
                if let fb = floats {
                    copyFloats(dst, fb + src + q * gemmNR, valid)
                } else {
                    var j = 0
                    while j + 4 <= valid {
                        UnsafeMutableRawPointer(dst + j).storeBytes(of: W.four(raw, src + q * gemmNR + j), as: SIMD4<Float>.self)
                        j += 4
                    }
                    while j < valid { dst[j] = W.scalar(raw, src + q * gemmNR + j); j += 1 }
                }
                for j in valid..<gemmNR { dst[j] = 0 }
            }
        }
    }

    /// Packs rows p0..<p0+kc, columns j0..<j0+nValid of a B that is not row-major (row-major B
    /// goes to `packBRows`) into one panel of `width` columns (`width` floats per k),
    /// zero-padding missing columns.
    @inline(__always)
    static func packB<W: GemmElement>(
        _ b: StridedMatrix<W>, p0: Int, kc: Int, j0: Int, nValid: Int, width gemmNR: Int, into bp: UnsafeMutablePointer<Float>
    ) {
        let rs = b.rowStride, cs = b.colStride
        if rs == 1 {
            gatherRows(b.base + j0 * cs + p0, cs, rows: nValid, width: gemmNR, kc: kc, bp)
            if nValid < gemmNR { for p in 0..<kc { for jj in nValid..<gemmNR { bp[p * gemmNR + jj] = 0 } } }
        } else {
            let raw = UnsafeRawPointer(b.base)
            for p in 0..<kc {
                let src = (p0 + p) * rs + j0 * cs
                for jj in 0..<gemmNR { bp[p * gemmNR + jj] = jj < nValid ? W.scalar(raw, src + jj * cs) : 0 }
            }
        }
    }

    // MARK: - Decode-sized products

    /// Few rows, row-major B (k×n, e.g. a weight in [in, out] layout): the micro-kernel reads B
    /// in place; only A (a dozen rows) is packed.
    static func smallMRowMajorB(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: MatrixOperand,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
        bias: UnsafePointer<Float>?, threads: Int
    ) {
        let kern = Kernels.active
        let gemmMR = kern.gemmMR, gemmNR = kern.gemmNR
        let mPanels = (m + gemmMR - 1) / gemmMR
        let ap = packedA(0).floats(mPanels * gemmMR * k)
        packA(a, i0: 0, mc: m, p0: 0, kc: k, width: gemmMR, into: ap)
        let fullPanels = n / gemmNR
        let mode: TileMode = accumulate ? .accumulate : (bias != nil ? .bias : .overwrite)
        Parallel.forEachTask(threads, threads: threads) { part, worker in
            let lo = fullPanels * part / threads, hi = fullPanels * (part + 1) / threads
            let tile = edgeTiles(worker).floats(gemmMR * gemmNR)
            for panel in lo..<hi {
                let j = panel * gemmNR
                for mp in 0..<mPanels {
                    let i = mp * gemmMR
                    let mValid = min(gemmMR, m - i), width = kern.panelWidth(mValid), kernel = kern.tile(width: width)
                    if mValid == width {
                        kernel(k, ap + i * k, b.base + j, b.rowStride, c + i * ldc + j, ldc, mode, bias.map { $0 + j })
                    } else {
                        kernel(k, ap + i * k, b.base + j, b.rowStride, tile, gemmNR, .overwrite, nil)
                        storeEdge(tile, mValid, gemmNR, c + i * ldc + j, ldc, mode, bias.map { $0 + j }, tileStride: gemmNR)
                    }
                }
            }
        }
        // Leftover columns (n not a multiple of gemmNR): a scalar loop over a few columns.
        let j0 = fullPanels * gemmNR
        if j0 < n {
            for i in 0..<m {
                for j in j0..<n {
                    var s: Float = 0
                    for p in 0..<k { s += a.base[i * a.rowStride + p * a.colStride] * b.base[p * b.rowStride + j] }
                    let base: Float = accumulate ? c[i * ldc + j] : (bias?[j] ?? 0)
                    c[i * ldc + j] = base + s
                }
            }
        }
    }

    /// At most 8 rows, row-major B: the 4-row decode kernel over panels of `decodeNR` columns
    /// (96 on AVX-512, 24 on AVX2) read in place, once for rows 0–3 and, with more rows, again
    /// for rows 4–7 while the panel is still in L2. On AVX-512, reading 384 contiguous bytes of
    /// each B row per panel streams weights from memory about a third faster than the 192 of an
    /// 8×48 tile. The last n mod decodeNR columns go through the 4-row GEMM tile the same way,
    /// and what is left (under gemmNR columns) through `smallMRowMajorB`.
    static func decodeRowMajorB<W: GemmElement>(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: StridedMatrix<W>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
        bias: UnsafePointer<Float>?, threads: Int
    ) {
        let kern = Kernels.active
        let gemmNR = kern.gemmNR, decodeNR = kern.decodeNR
        let halves = m <= 4 ? 1 : 2
        // Pack A as 4 floats per k per half, zero rows past m.
        let ap = packedA(0).floats(8 * k)
        for h in 0..<halves {
            let pack = ap + h * 4 * k
            for p in 0..<k {
                for i in 0..<4 { let r = 4 * h + i; pack[p * 4 + i] = r < m ? a.base[r * a.rowStride + p * a.colStride] : 0 }
            }
        }
        // One decode panel fewer when that leaves whole gemmNR-column panels instead of a
        // remainder for the scalar loop (AVX2: 128 columns = 4×24 + 2×16, not 5×24 + 8).
        var panels = n / decodeNR
        if (n - panels * decodeNR) % gemmNR != 0 && panels > 0 && (n - (panels - 1) * decodeNR) % gemmNR == 0 { panels -= 1 }
        let narrow = (n - panels * decodeNR) / gemmNR
        let mode: TileMode = accumulate ? .accumulate : (bias != nil ? .bias : .overwrite)
        let decodeTile = W.decodeTile(kern), tile4 = W.tile4(kern)
        // One panel of `width` columns at column j: k in blocks whose slice of the panel (512
        // rows × at most 384 bytes) stays in L2 for the second half's pass; a half with fewer than 4
        // rows sums into the tile.
        func sweep(_ j: Int, _ width: Int, _ tile: UnsafeMutablePointer<Float>) {
            let kernel = width == decodeNR ? decodeTile : tile4
            var p0 = 0
            while p0 < k {
                let kcur = min(512, k - p0)
                for h in 0..<halves {
                    let full = m - 4 * h >= 4
                    let first: TileMode = full ? mode : .overwrite
                    kernel(
                        kcur, ap + h * 4 * k + p0 * 4, b.base + p0 * b.rowStride + j, b.rowStride,
                        full ? c + 4 * h * ldc + j : tile, full ? ldc : width,
                        p0 == 0 ? first : .accumulate, full && p0 == 0 ? bias.map { $0 + j } : nil)
                }
                p0 += kcur
            }
            let rows = m - 4 * (halves - 1)
            if rows < 4 {
                storeEdge(tile, rows, width, c + 4 * (halves - 1) * ldc + j, ldc, mode, bias.map { $0 + j }, tileStride: width)
            }
        }
        Parallel.forEachTask(threads, threads: threads) { part, worker in
            let lo = panels * part / threads, hi = panels * (part + 1) / threads
            let tile = edgeTiles(worker).floats(4 * decodeNR)
            for panel in lo..<hi { sweep(panel * decodeNR, decodeNR, tile) }
            // the gemmNR-column panels after the last decodeNR-column one, on the last worker
            if part == threads - 1 {
                for q in 0..<narrow { sweep(panels * decodeNR + q * gemmNR, gemmNR, tile) }
            }
        }
        let j0 = panels * decodeNR + narrow * gemmNR
        if j0 < n {
            // The last few columns (fewer than gemmNR), widened into a k × (n − j0) block first
            // when B is bfloat16.
            let tail: MatrixOperand
            if let fb = b.base as? UnsafePointer<Float> {
                tail = MatrixOperand(base: fb + j0, rowStride: b.rowStride, colStride: 1)
            } else {
                let rest = n - j0, t = packedB(0).floats(rest * k), raw = UnsafeRawPointer(b.base)
                for p in 0..<k { for j in 0..<rest { t[p * rest + j] = W.scalar(raw, p * b.rowStride + j0 + j) } }
                tail = .rowMajor(t, columns: rest)
            }
            smallMRowMajorB(
                m: m, n: n - j0, k: k, a: a, b: tail,
                c: c + j0, ldc: ldc, accumulate: accumulate, bias: bias.map { $0 + j0 }, threads: 1)
        }
    }

    /// Few rows (≤ 8), B given as the transpose of a row-major matrix (n×k, e.g. the tied
    /// embedding for the LM head): each output is a dot product of two contiguous rows, and
    /// every row of the big matrix is read once.
    static func smallMTransposedB<W: GemmElement>(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: StridedMatrix<W>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool,
        bias: UnsafePointer<Float>?, threads: Int
    ) {
        // Gather A rows contiguously (8 × k, rows past m zero) so the kernel has no branches.
        let ap = packedA(0).floats(8 * k)
        for i in 0..<8 {
            for p in 0..<k { ap[i * k + p] = i < m ? a.base[i * a.rowStride + p * a.colStride] : 0 }
        }
        let ldb = b.colStride
        let apc = UnsafePointer(ap)
        let kern = Kernels.active
        let dotRows4x4 = W.dotRows4x4(kern), dotRows8x2 = W.dotRows8x2(kern)
        let halves = m <= 4 ? 1 : 2
        Parallel.forEachTask(threads, threads: threads) { part, worker in
            let lo = n * part / threads, hi = n * (part + 1) / threads
            let d = edgeTiles(worker).floats(32)
            var j = lo
            // four rows of B per pass (four weight streams at once), each half of A's rows in turn
            while j + 4 <= hi {
                for h in 0..<halves { dotRows4x4(apc + 4 * h * k, k, b.base + j * ldb, ldb, d + 16 * h) }
                for i in 0..<m {
                    let row = d + 16 * (i / 4) + 4 * (i % 4)
                    for r in 0..<4 { c[i * ldc + j + r] = (accumulate ? c[i * ldc + j + r] : (bias?[j + r] ?? 0)) + row[r] }
                }
                j += 4
            }
            while j < hi {
                // two rows of B per pass: every load of A feeds two FMAs
                let pair = j + 1 < hi
                dotRows8x2(apc, k, b.base + j * ldb, b.base + (pair ? j + 1 : j) * ldb, d)
                for i in 0..<m {
                    c[i * ldc + j] = (accumulate ? c[i * ldc + j] : (bias?[j] ?? 0)) + d[i]
                    if pair { c[i * ldc + j + 1] = (accumulate ? c[i * ldc + j + 1] : (bias?[j + 1] ?? 0)) + d[8 + i] }
                }
                j += pair ? 2 : 1
            }
        }
    }
}

/// The next unclaimed row panel of a product's dynamically shared rows.
final class ChunkCounter: Sendable {
    let next = Atomic<Int>(0)
}

extension KernelTable {
    /// The rows a panel of `rows` rows of A is packed and multiplied at: gemmMR for whole panels;
    /// a last, partial one takes the narrowest tile that holds it (4 or 8 rows), so fewer of its
    /// multiply-adds go to padding (64 rows on AVX-512: five 12-row panels and one of 4, not 6).
    /// Each element of C is summed in the same order whatever the tile's rows.
    @inline(__always)
    func panelWidth(_ rows: Int) -> Int {
        if rows >= gemmMR { return gemmMR }
        if rows <= 4 { return 4 }
        return rows <= 8 && gemmMR > 8 ? 8 : gemmMR
    }

    /// The micro-kernel for panels packed `width` rows wide (`panelWidth`).
    @inline(__always)
    func tile(width: Int) -> Tile { width == gemmMR ? gemmTile : (width == 4 ? gemmTile4 : gemmTile8) }
}
