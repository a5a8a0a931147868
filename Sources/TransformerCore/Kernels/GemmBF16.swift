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
            Parallel.forEachTask(mBlocks * nParts, threads: threads) { task, worker in
                let mb = task / nParts, part = task % nParts
                let i0 = mb * bf16MC, mcur = min(bf16MC, m - i0)
                let tiles = (mcur + bf16MR - 1) / bf16MR
                let ap = packedA(worker).words(tiles * bf16MR * kcp)
                packPairsA(a, i0: i0, rows: mcur, k: k, kp0: kp0, kcp: kcp, into: ap)
                let edge = edgeTiles(worker).floats(bf16MR * bf16NR)
                for q in panels * part / nParts..<panels * (part + 1) / nParts {
                    let j = q * bf16NR, nValid = min(bf16NR, n - j)
                    let bPanel = bBase + q * bStride
                    let biasAt = bias.map { $0 + j }
                    for t in 0..<tiles {
                        let valid = min(bf16MR, mcur - t * bf16MR)
                        let rows = valid > 8 ? 12 : (valid > 4 ? 8 : 4)
                        let cTile = c + (i0 + t * bf16MR) * ldc + j
                        let aTile = UnsafePointer(ap + t * bf16MR * kcp)
                        if valid == rows && nValid == bf16NR {
                            tile(rows, kcp, aTile, bf16MR, bPanel, cTile, ldc, mode, biasAt)
                        } else {
                            tile(rows, kcp, aTile, bf16MR, bPanel, edge, bf16NR, .overwrite, nil)
                            storeEdge(edge, valid, nValid, cTile, ldc, mode, biasAt, tileStride: bf16NR)
                        }
                    }
                }
            }
        }
    }

    /// Packs rows i0..<i0+rows of A, pairs kp0..<kp0+kcp of k, as bfloat16 pairs in tiles of 12
    /// rows: tile t at t·12·kcp, pair p of row r at p·12 + r; rows past `rows` and k past `k` zero.
    static func packPairsA(
        _ a: MatrixOperand, i0: Int, rows: Int, k: Int, kp0: Int, kcp: Int, into ap: UnsafeMutablePointer<UInt32>
    ) {
        let rs = a.rowStride, cs = a.colStride, mr = bf16MR
        let tiles = (rows + mr - 1) / mr
        if rs == 1 && cs != 1 {
            // Transposed A: each k is a contiguous run of the block's rows; two of them make a pair.
            for p in 0..<kcp {
                let k0 = 2 * (kp0 + p)
                let src0 = a.base + k0 * cs + i0
                let src1 = k0 + 1 < k ? a.base + (k0 + 1) * cs + i0 : nil
                for t in 0..<tiles {
                    let dst = ap + t * mr * kcp + p * mr
                    let r0 = t * mr, valid = min(mr, rows - r0)
                    if valid == mr, let src1 {
                        pairs8(src0 + r0, src1 + r0, dst)
                        dst[8] = pair(src0[r0 + 8], src1[r0 + 8]); dst[9] = pair(src0[r0 + 9], src1[r0 + 9])
                        dst[10] = pair(src0[r0 + 10], src1[r0 + 10]); dst[11] = pair(src0[r0 + 11], src1[r0 + 11])
                    } else {
                        for r in 0..<mr { dst[r] = r < valid ? pair(src0[r0 + r], src1?[r0 + r] ?? 0) : 0 }
                    }
                }
            }
            return
        }
        for t in 0..<tiles {
            let tileBase = ap + t * mr * kcp
            for r in 0..<mr {
                let i = t * mr + r
                guard i < rows else {
                    for p in 0..<kcp { tileBase[p * mr + r] = 0 }
                    continue
                }
                let row = a.base + (i0 + i) * rs
                var p = 0
                if cs == 1 {
                    // Row-major A: a pair is two neighbouring floats.
                    let full = min(kcp, k / 2 - kp0)
                    let src = UnsafeRawPointer(row + 2 * kp0)
                    while p + 4 <= full {
                        let x = src.loadUnaligned(fromByteOffset: 8 * p, as: SIMD8<Float>.self)
                        let w = roundedBF16(x)
                        let words = w.evenHalf | (w.oddHalf &<< 16)
                        tileBase[p * mr + r] = words[0]; tileBase[(p + 1) * mr + r] = words[1]
                        tileBase[(p + 2) * mr + r] = words[2]; tileBase[(p + 3) * mr + r] = words[3]
                        p += 4
                    }
                }
                while p < kcp {
                    let k0 = 2 * (kp0 + p)
                    let x0 = k0 < k ? row[k0 * cs] : 0, x1 = k0 + 1 < k ? row[(k0 + 1) * cs] : 0
                    tileBase[p * mr + r] = pair(x0, x1)
                    p += 1
                }
            }
        }
    }

    /// Packs B's columns j0..<j0+32 (zero past n), pairs kp0..<kp0+kcp of k (zero past k), as
    /// bfloat16 pairs: pair p of column j at p·32 + j.
    static func packPairsB<W: GemmElement>(
        _ b: StridedMatrix<W>, k: Int, kp0: Int, kcp: Int, j0: Int, n: Int, into bp: UnsafeMutablePointer<UInt32>
    ) {
        let rs = b.rowStride, cs = b.colStride, nr = bf16NR
        let nValid = min(nr, n - j0)
        let raw = UnsafeRawPointer(b.base)
        if cs == 1 && W.self == Float.self && nValid == nr {
            // Row-major B of floats: rows 2p and 2p+1 side by side, lane by lane.
            let f = b.base as! UnsafePointer<Float>
            for p in 0..<kcp {
                let k0 = 2 * (kp0 + p)
                let dst = bp + p * nr
                let r0 = f + k0 * rs + j0
                if k0 + 1 < k {
                    let r1 = r0 + rs
                    for q in stride(from: 0, to: nr, by: 8) { pairs8(r0 + q, r1 + q, dst + q) }
                } else if k0 < k {
                    for j in 0..<nr { dst[j] = pair(r0[j], 0) }
                } else {
                    for j in 0..<nr { dst[j] = 0 }
                }
            }
            return
        }
        if rs == 1 {
            // Transposed B: column j is contiguous along k, a pair two neighbouring elements.
            for j in 0..<nr {
                guard j < nValid else {
                    for p in 0..<kcp { bp[p * nr + j] = 0 }
                    continue
                }
                let col = (j0 + j) * cs
                for p in 0..<kcp {
                    let k0 = 2 * (kp0 + p)
                    let x0: Float = k0 < k ? W.scalar(raw, col + k0) : 0
                    let x1: Float = k0 + 1 < k ? W.scalar(raw, col + k0 + 1) : 0
                    bp[p * nr + j] = pair(x0, x1)
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

    /// dst[i] = pair(lo[i], hi[i]) for i < 8.
    @inline(__always)
    static func pairs8(_ lo: UnsafePointer<Float>, _ hi: UnsafePointer<Float>, _ dst: UnsafeMutablePointer<UInt32>) {
        let l = roundedBF16(UnsafeRawPointer(lo).loadUnaligned(as: SIMD8<Float>.self))
        let h = roundedBF16(UnsafeRawPointer(hi).loadUnaligned(as: SIMD8<Float>.self))
        UnsafeMutableRawPointer(dst).storeBytes(of: l | (h &<< 16), as: SIMD8<UInt32>.self)
    }

    /// Each lane rounded to bfloat16 (to nearest, ties to even; a NaN stays a quiet NaN of its
    /// sign), in the low 16 bits: `BFloat16.init`, lane by lane.
    @inline(__always)
    static func roundedBF16(_ x: SIMD8<Float>) -> SIMD8<UInt32> {
        let b = unsafeBitCast(x, to: SIMD8<UInt32>.self)
        let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
        let nan = (b & 0x7FFF_FFFF) .> 0x7F80_0000
        return rounded.replacing(with: 0x7FC0 | ((b &>> 16) & 0x8000), where: nan)
    }
}

/// Weight operands packed for the bfloat16 products, kept until the weights change: a weight is
/// converted and packed once per optimizer step (`AdamW.update` reports the change), or once
/// for frozen weights, never once per product.
///
/// Keyed by the operand's address, strides and shape. An entry also remembers 16 of the source's
/// elements and is packed again if any differs, so weights rewritten without a report (loaded
/// into the same buffer, say) are not read stale. Entries are dropped when their memory is
/// reported changed and all at once past `maxBytes`.
final class PackedWeights: @unchecked Sendable {
    static let shared = PackedWeights()
    static let maxBytes = 8 << 30

    final class Entry: @unchecked Sendable {
        let words: UnsafeMutablePointer<UInt32>
        let count: Int
        let samples: [UInt32]
        init(count: Int, samples: [UInt32]) {
            words = .allocate(capacity: count); self.count = count; self.samples = samples
        }
        deinit { words.deallocate() }
    }

    struct Key: Hashable {
        let address: UInt, rowStride: Int, colStride: Int, k: Int, n: Int, bytes: Int
    }

    private let entries = Mutex<[Key: Entry]>([:])

    /// Entries held (for tests).
    var count: Int { entries.withLock { $0.count } }

    /// B(k×n) packed whole: panel q (32 columns) at q·32·⌈k/2⌉ words, pair p of column j at p·32 + j.
    func packed<W: GemmElement>(_ b: StridedMatrix<W>, k: Int, n: Int, threads: Int) -> Entry {
        let key = Key(
            address: UInt(bitPattern: b.base), rowStride: b.rowStride, colStride: b.colStride, k: k, n: n, bytes: MemoryLayout<W>.stride)
        let raw = UnsafeRawPointer(b.base)
        let samples = (0..<16).map { s -> UInt32 in
            let i = (k - 1) * s / 15, j = (n - 1) * ((s * 7) % 16) / 15
            return W.scalar(raw, i * b.rowStride + j * b.colStride).bitPattern
        }
        if let e = entries.withLock({ $0[key] }), e.samples == samples { return e }
        let kp = (k + 1) / 2, panels = (n + Gemm.bf16NR - 1) / Gemm.bf16NR
        let e = Entry(count: panels * kp * Gemm.bf16NR, samples: samples)
        Parallel.forEachTask(panels, threads: threads) { q, _ in
            Gemm.packPairsB(b, k: k, kp0: 0, kcp: kp, j0: q * Gemm.bf16NR, n: n, into: e.words + q * kp * Gemm.bf16NR)
        }
        entries.withLock { all in
            let held = all.values.reduce(0) { $0 + $1.count * 4 }
            if held + e.count * 4 > Self.maxBytes { all.removeAll() }
            all[key] = e
        }
        return e
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
}

extension Gemm {
    /// Tells the bfloat16 products that the `count` floats from `start` (weights) changed, so
    /// their packed copies are made again when next used. `AdamW.update` and the model's own
    /// writers call it; other code that writes weights in place should too.
    public static func weightsChanged(_ start: UnsafePointer<Float>, count: Int) {
        PackedWeights.shared.changed(UnsafeRawPointer(start), bytes: count * 4)
    }
}
