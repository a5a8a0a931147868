import KernelBodies
import Synchronization

/// The products in bfloat16 (`Kernels.precision == .bf16`): both operands are rounded to bfloat16
/// (to nearest, ties to even) as they are packed, two values of k to each 32-bit word, and the
/// micro-kernel (`vdpbf16ps` on `avx512bf16`, its emulation on every other path) sums their
/// products in single precision, 12 × 32 tiles at a time.
///
/// Every product shape takes this one blocked driver, decode-sized ones included: a weight
/// operand (`weight: true`) is packed once, whole, and kept (see `PackedWeights`), so a product
/// with it only packs A, which has few rows when sampling. Blocks of `kPairs` pairs of k, rows in
/// blocks of `mc`; each tile's arithmetic depends only on where it lies, so the result does not
/// depend on the thread count, and the hardware and emulated tiles give the same bits.
extension Gemm {
    static let bf16KPairs = 256 // 512 values of k: a B panel of 32 KiB, an A block of 96 KiB
    static let bf16MC = 96
    static let bf16MR = 12, bf16NR = 32

    static func bf16Product<W: GemmElement>(
        m: Int, n: Int, k: Int, a: MatrixOperand, b: StridedMatrix<W>,
        c: UnsafeMutablePointer<Float>, ldc: Int, accumulate: Bool, bias: UnsafePointer<Float>?,
        weight: Bool, threads: Int
    ) {
        let tile = Kernels.bf16Tile
        let kpTotal = (k + 1) / 2
        let panels = (n + bf16NR - 1) / bf16NR
        let packed = weight ? PackedWeights.shared.packed(b, k: k, n: n, threads: threads) : nil
        // A few rows (sampling): all of k at once; A is tiny, and B streams through once.
        let kBlocks = m <= 16 ? 1 : (kpTotal + bf16KPairs - 1) / bf16KPairs
        let mBlocks = (m + bf16MC - 1) / bf16MC
        let nParts = mBlocks >= 2 * threads ? 1 : min(panels, threads)
        for kb in 0..<kBlocks {
            let kp0 = kpTotal * kb / kBlocks, kcp = kpTotal * (kb + 1) / kBlocks - kp0
            // B's panels for this block: panel q at bBase + q·bStride, 32 words per pair.
            let bBase: UnsafePointer<UInt32>, bStride: Int
            if let packed {
                bBase = UnsafePointer(packed.words + kp0 * bf16NR); bStride = kpTotal * bf16NR
            } else {
                let bp = packedB(0).words(panels * kcp * bf16NR)
                Parallel.forEachTask(panels, threads: threads) { q, _ in
                    packPairsB(b, k: k, kp0: kp0, kcp: kcp, j0: q * bf16NR, n: n, into: bp + q * kcp * bf16NR)
                }
                bBase = UnsafePointer(bp); bStride = kcp * bf16NR
            }
            let mode: TileMode = (kb > 0 || accumulate) ? .accumulate : (bias != nil ? .bias : .overwrite)
            // The workers claim tasks as they come free: on a busy machine a static split left one
            // waiting on the other.
            let claimed = ChunkCounter()
            Parallel.forEachTask(min(threads, mBlocks * nParts), threads: threads) { _, worker in
                while true {
                    let task = claimed.next.wrappingAdd(1, ordering: .relaxed).oldValue
                    guard task < mBlocks * nParts else { return }
                    let mb = task / nParts, part = task % nParts
                    let i0 = mb * bf16MC, mcur = min(bf16MC, m - i0)
                    let tiles = (mcur + bf16MR - 1) / bf16MR
                    let ap = packedA(worker).words(tiles * bf16MR * kcp)
                    let layout = packPairsA(a, i0: i0, rows: mcur, k: k, kp0: kp0, kcp: kcp, into: ap)
                    let edge = edgeTiles(worker).floats(bf16MR * bf16NR)
                    for q in panels * part / nParts..<panels * (part + 1) / nParts {
                        let j = q * bf16NR, nValid = min(bf16NR, n - j)
                        let bPanel = bBase + q * bStride
                        let biasAt = bias.map { $0 + j }
                        for t in 0..<tiles {
                            let valid = min(bf16MR, mcur - t * bf16MR)
                            let rows = valid > 8 ? 12 : (valid > 4 ? 8 : 4)
                            let cTile = c + (i0 + t * bf16MR) * ldc + j
                            let aTile = UnsafePointer(ap + t * bf16MR * layout.ars)
                            if valid == rows && nValid == bf16NR {
                                tile(rows, kcp, aTile, layout.ars, layout.aps, bPanel, cTile, ldc, mode, biasAt)
                            } else {
                                tile(rows, kcp, aTile, layout.ars, layout.aps, bPanel, edge, bf16NR, .overwrite, nil)
                                storeEdge(edge, valid, nValid, cTile, ldc, mode, biasAt, tileStride: bf16NR)
                            }
                        }
                    }
                }
            }
        }
    }

    /// Where the packed A block puts row r's pair p: word `r·ars + p·aps` (tile t of 12 rows starts
    /// at row 12·t).
    struct PackedALayout { let ars: Int, aps: Int }

    /// Packs rows i0..<i0+rows of A, pairs kp0..<kp0+kcp of k (zero past k), as bfloat16 pairs.
    /// Row-major A keeps its rows (row r at r·kcp): each is one contiguous conversion. Transposed A
    /// (each k a contiguous run of rows) keeps that order (pair p at p·rowsPadded), where two
    /// runs of k interleave lane by lane. Rows past `rows` in the last tile hold anything: the
    /// kernel's results for them are not stored.
    static func packPairsA(
        _ a: MatrixOperand, i0: Int, rows: Int, k: Int, kp0: Int, kcp: Int, into ap: UnsafeMutablePointer<UInt32>
    ) -> PackedALayout {
        let rs = a.rowStride, cs = a.colStride
        let kern = Kernels.active
        let padded = (rows + bf16MR - 1) / bf16MR * bf16MR
        let fullPairs = max(0, min(kcp, k / 2 - kp0)) // pairs with both values of k inside
        if rs == 1 && cs != 1 {
            for p in 0..<kcp {
                let k0 = 2 * (kp0 + p), dst = ap + p * padded
                let lo = a.base + k0 * cs + i0
                if p < fullPairs {
                    kern.bf16Interleave(lo, lo + cs, rows, dst)
                } else {
                    for i in 0..<rows { dst[i] = k0 < k ? pair(lo[i], 0) : 0 }
                }
            }
            return PackedALayout(ars: 1, aps: padded)
        }
        for i in 0..<rows {
            let dst = ap + i * kcp
            let row = a.base + (i0 + i) * rs
            var p = 0
            if cs == 1 {
                kern.bf16Rows(row + 2 * kp0, fullPairs, dst)
                p = fullPairs
            }
            while p < kcp {
                let k0 = 2 * (kp0 + p)
                dst[p] = pair(k0 < k ? row[k0 * cs] : 0, k0 + 1 < k ? row[(k0 + 1) * cs] : 0)
                p += 1
            }
        }
        return PackedALayout(ars: kcp, aps: 1)
    }

    /// Packs B's columns j0..<j0+32 (zero past n), pairs kp0..<kp0+kcp of k (zero past k), as
    /// bfloat16 pairs: pair p of column j at p·32 + j.
    static func packPairsB<W: GemmElement>(
        _ b: StridedMatrix<W>, k: Int, kp0: Int, kcp: Int, j0: Int, n: Int, into bp: UnsafeMutablePointer<UInt32>
    ) {
        let rs = b.rowStride, cs = b.colStride, nr = bf16NR
        let nValid = min(nr, n - j0)
        let raw = UnsafeRawPointer(b.base)
        let kern = Kernels.active
        let fullPairs = max(0, min(kcp, k / 2 - kp0))
        if cs == 1, let f = b.base as? UnsafePointer<Float> {
            // Row-major B of floats: rows 2p and 2p+1 interleaved, lane by lane.
            for p in 0..<kcp {
                let k0 = 2 * (kp0 + p), dst = bp + p * nr
                let r0 = f + k0 * rs + j0
                if p < fullPairs {
                    kern.bf16Interleave(r0, r0 + rs, nValid, dst)
                } else {
                    for j in 0..<nValid { dst[j] = k0 < k ? pair(r0[j], 0) : 0 }
                }
                for j in nValid..<nr { dst[j] = 0 }
            }
            return
        }
        if rs == 1, let f = b.base as? UnsafePointer<Float> {
            // Transposed B of floats: column j is contiguous along k; convert it whole, then deal
            // its pairs out to the panel.
            withUnsafeTemporaryAllocation(of: UInt32.self, capacity: max(1, kcp)) { tmp in
                let t = tmp.baseAddress!
                for j in 0..<nr {
                    if j < nValid {
                        let col = f + (j0 + j) * cs
                        kern.bf16Rows(col + 2 * kp0, fullPairs, t)
                        for p in fullPairs..<kcp {
                            let k0 = 2 * (kp0 + p)
                            t[p] = k0 < k ? pair(col[k0], 0) : 0
                        }
                        for p in 0..<kcp { bp[p * nr + j] = t[p] }
                    } else {
                        for p in 0..<kcp { bp[p * nr + j] = 0 }
                    }
                }
            }
            return
        }
        for p in 0..<kcp {
            let k0 = 2 * (kp0 + p)
            for j in 0..<nr {
                let x0: Float = j < nValid && k0 < k ? W.scalar(raw, k0 * rs + (j0 + j) * cs) : 0
                let x1: Float = j < nValid && k0 + 1 < k ? W.scalar(raw, (k0 + 1) * rs + (j0 + j) * cs) : 0
                bp[p * nr + j] = pair(x0, x1)
            }
        }
    }

    /// Two floats rounded to bfloat16, `x0` in the low half of the word.
    @inline(__always)
    static func pair(_ x0: Float, _ x1: Float) -> UInt32 {
        UInt32(BFloat16(x0).bits) | UInt32(BFloat16(x1).bits) << 16
    }

}

/// Weight operands packed once and kept until the weights change, never packed once per product.
///
/// Two stores: `shared` holds the bfloat16 products' pairs (`--precision bf16`), packed once per
/// optimizer step (`AdamW.update` reports the change) or once for frozen weights; `sampling`
/// holds single-precision panels while a `Gemm.keepingPackedWeights` scope is open (sampling,
/// where every decode step multiplies a few dozen rows by every weight), and is emptied when the
/// last scope closes.
///
/// Keyed by the operand's address, strides, shape and layout. An entry also remembers 16 of the
/// source's elements and is packed again if any differs, so weights rewritten without a report
/// (loaded into the same buffer, say) are not read stale. Entries are dropped when their memory is
/// reported changed and all at once past `maxBytes`.
final class PackedWeights: @unchecked Sendable {
    static let shared = PackedWeights(maxBytes: 8 << 30)
    static let sampling = PackedWeights(maxBytes: 4 << 30)
    let maxBytes: Int

    init(maxBytes: Int) { self.maxBytes = maxBytes }

    /// One packed operand: 4-byte elements, bfloat16 pairs (`words`) or floats (`floats`), as the
    /// store that made it packs them.
    final class Entry: @unchecked Sendable {
        private let raw: UnsafeMutableRawPointer
        let count: Int
        let samples: [UInt32]
        /// `count` elements of `Element` (4 bytes), uninitialised.
        init<Element>(count: Int, samples: [UInt32], as _: Element.Type) {
            precondition(MemoryLayout<Element>.stride == 4)
            raw = .allocate(byteCount: max(1, count) * 4, alignment: 64); self.count = count; self.samples = samples
            raw.bindMemory(to: Element.self, capacity: max(1, count))
        }
        deinit { raw.deallocate() }
        var words: UnsafeMutablePointer<UInt32> { raw.assumingMemoryBound(to: UInt32.self) }
        var floats: UnsafeMutablePointer<Float> { raw.assumingMemoryBound(to: Float.self) }
    }

    struct Key: Hashable {
        let address: UInt, rowStride: Int, colStride: Int, k: Int, n: Int, bytes: Int, layout: Int

        /// The key of B(k×n) packed in `layout`.
        init<W: GemmElement>(_ b: StridedMatrix<W>, k: Int, n: Int, layout: Int) {
            address = UInt(bitPattern: b.base); rowStride = b.rowStride; colStride = b.colStride
            self.k = k; self.n = n; bytes = MemoryLayout<W>.stride; self.layout = layout
        }
    }

    private let entries = Mutex<[Key: Entry]>([:])

    /// Entries held (for tests).
    var count: Int { entries.withLock { $0.count } }
    /// Bytes held.
    var bytes: Int { entries.withLock { $0.values.reduce(0) { $0 + $1.count * 4 } } }

    /// The entry for B(k×n) in `layout`, made by `pack` (which fills its `count` elements of
    /// `Element`) unless a current one is held.
    private func entry<W: GemmElement, Element>(
        _ b: StridedMatrix<W>, k: Int, n: Int, layout: Int, count: Int, as _: Element.Type,
        pack: (Entry) -> Void
    ) -> Entry {
        let key = Key(b, k: k, n: n, layout: layout)
        let raw = UnsafeRawPointer(b.base)
        let samples = (0..<16).map { s -> UInt32 in
            let i = (k - 1) * s / 15, j = (n - 1) * ((s * 7) % 16) / 15
            return W.scalar(raw, i * b.rowStride + j * b.colStride).bitPattern
        }
        if let e = entries.withLock({ $0[key] }), e.samples == samples { return e }
        let e = Entry(count: count, samples: samples, as: Element.self)
        pack(e)
        entries.withLock { all in
            let held = all.values.reduce(0) { $0 + $1.count * 4 }
            if held + e.count * 4 > maxBytes { all.removeAll() }
            all[key] = e
        }
        return e
    }

    /// B(k×n) as bfloat16 pairs, whole: panel q (32 columns) at q·32·⌈k/2⌉ words, pair p of
    /// column j at p·32 + j.
    func packed<W: GemmElement>(_ b: StridedMatrix<W>, k: Int, n: Int, threads: Int) -> Entry {
        let kp = (k + 1) / 2, panels = (n + Gemm.bf16NR - 1) / Gemm.bf16NR
        return entry(b, k: k, n: n, layout: 0, count: panels * kp * Gemm.bf16NR, as: UInt32.self) { e in
            Parallel.forEachTask(panels, threads: threads) { q, _ in
                Gemm.packPairsB(b, k: k, kp0: 0, kcp: kp, j0: q * Gemm.bf16NR, n: n, into: e.words + q * kp * Gemm.bf16NR)
            }
        }
    }

    /// B(k×n) as the single-precision blocked product packs it, every block at once: the block of
    /// columns jc..<jc+nc and k rows pc..<pc+kc at `jc·k + pc·w`, w its columns rounded up to
    /// whole panels of `width` (the blocks before it are whole: nc is a multiple of every width).
    /// Nil when it is not held and would not fit in `maxBytes` beside what is: the product then
    /// packs it block by block, as outside a scope (dropping the held weights to make room would
    /// only pack them again at the next step).
    func panels<W: GemmElement>(_ b: StridedMatrix<W>, k: Int, n: Int, width: Int, threads: Int) -> Entry? {
        let last = n - (n - 1) / Gemm.nc * Gemm.nc
        let count = (n - last) * k + (last + width - 1) / width * width * k
        if bytes + count * 4 > maxBytes && !holds(b, k: k, n: n, layout: width) { return nil }
        return entry(b, k: k, n: n, layout: width, count: count, as: Float.self) { e in
            var jc = 0
            while jc < n {
                let ncur = min(Gemm.nc, n - jc), padded = (ncur + width - 1) / width * width
                var pc = 0
                while pc < k {
                    let kcur = min(Gemm.kc, k - pc)
                    Gemm.packBBlock(b, pc: pc, kc: kcur, jc: jc, n: ncur, width: width, into: e.floats + jc * k + pc * padded, threads: threads)
                    pc += kcur
                }
                jc += ncur
            }
        }
    }

    /// Whether an entry for B(k×n) in `layout` is held (current or not).
    private func holds<W: GemmElement>(_ b: StridedMatrix<W>, k: Int, n: Int, layout: Int) -> Bool {
        let key = Key(b, k: k, n: n, layout: layout)
        return entries.withLock { $0[key] != nil }
    }

    /// Drops every entry whose operand starts in `bytes` bytes from `start`.
    func changed(_ start: UnsafeRawPointer, bytes: Int) {
        let lo = UInt(bitPattern: start), hi = lo + UInt(bytes)
        entries.withLock { all in
            if all.isEmpty { return }
            for key in all.keys where key.address >= lo && key.address < hi { all[key] = nil }
        }
    }

    /// Drops every entry.
    func removeAll() { entries.withLock { $0.removeAll() } }

    /// `changed` in every store.
    static func changedEverywhere(_ start: UnsafeRawPointer, bytes: Int) {
        shared.changed(start, bytes: bytes)
        sampling.changed(start, bytes: bytes)
    }
}

extension Gemm {
    /// Tells the products that keep packed weights that the `count` floats from `start` (weights) changed, so
    /// their packed copies are made again when next used. `AdamW.update` and the model's own
    /// writers call it; other code that writes weights in place should too.
    public static func weightsChanged(_ start: UnsafePointer<Float>, count: Int) {
        PackedWeights.changedEverywhere(UnsafeRawPointer(start), bytes: count * 4)
    }
}
