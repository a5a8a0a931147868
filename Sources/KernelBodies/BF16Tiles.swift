// The bfloat16 product micro-kernel without the hardware instruction: the arithmetic of
// `vdpbf16ps`, emulated with fp32 vectors. Operands arrive packed in pairs of k (two bfloat16 in
// each 32-bit word, the even k in the low half), as the hardware kernel reads them.

/// C[0..<rows, 0..<32] (=|+=) A·B over `kp` pairs of k; the layout of `rlhf_bf16_tile` (see
/// KernelsBF16.h): row r's pair p of A at `a[r·ars + p·aps]`, `b` 32 words per pair.
public typealias BF16Tile = (
    _ rows: Int, _ kp: Int, _ a: UnsafePointer<UInt32>, _ ars: Int, _ aps: Int, _ b: UnsafePointer<UInt32>,
    _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode, _ bias: UnsafePointer<Float>?
) -> Void

/// dst[i] = the bfloat16 pair of src[2i] (low half) and src[2i+1] (high half), i < count: a row
/// of floats rounded to bfloat16 in place order.
public typealias BF16Rows = (_ src: UnsafePointer<Float>, _ count: Int, _ dst: UnsafeMutablePointer<UInt32>) -> Void

/// dst[i] = the bfloat16 pair of lo[i] (low half) and hi[i] (high half), i < count.
public typealias BF16Interleave = (
    _ lo: UnsafePointer<Float>, _ hi: UnsafePointer<Float>, _ count: Int, _ dst: UnsafeMutablePointer<UInt32>
) -> Void

extension Body {
    /// The emulated bfloat16 tile, for rows 4, 8 or 12. Widening a bfloat16 is exact, and so is
    /// the product of two of them (8-bit significands), so each step below, the odd k's product
    /// added to the sum and then the even k's, each rounded once, is what `vdpbf16ps` does in
    /// each lane, in the same order. (The instruction also flushes subnormal inputs and results to
    /// zero; this does not. Below 2⁻¹²⁶ the two can differ.) The 32 columns are done `lanes` at a
    /// time, each with its own sums, so every path keeps its sums in registers.
    @inlinable @inline(__always)
    public static func bf16Tile(
        rows: Int, _ kp: Int, _ a: UnsafePointer<UInt32>, _ ars: Int, _ aps: Int, _ b: UnsafePointer<UInt32>,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int, _ mode: TileMode, _ bias: UnsafePointer<Float>?
    ) {
        let high = I.U(repeating: 0xFFFF_0000)
        var col = 0
        while col < 32 {
            var s0 = V(), s1 = V(), s2 = V(), s3 = V(), s4 = V(), s5 = V(), s6 = V(), s7 = V(), s8 = V(), s9 = V(), s10 = V(), s11 = V()
            var bp = UnsafeRawPointer(b + col)
            var ap = a
            for _ in 0..<kp {
                let u = bp.loadUnaligned(as: I.U.self)
                let even = unsafeBitCast(u &<< 16, to: V.self), odd = unsafeBitCast(u & high, to: V.self)
                @inline(__always) func step(_ s: inout V, _ w: UInt32) {
                    s = madd(s, splat(Float(bitPattern: w & 0xFFFF_0000)), odd)
                    s = madd(s, splat(Float(bitPattern: w &<< 16)), even)
                }
                step(&s0, ap[0]); step(&s1, ap[ars]); step(&s2, ap[2 * ars]); step(&s3, ap[3 * ars])
                if rows > 4 { step(&s4, ap[4 * ars]); step(&s5, ap[5 * ars]); step(&s6, ap[6 * ars]); step(&s7, ap[7 * ars]) }
                if rows > 8 { step(&s8, ap[8 * ars]); step(&s9, ap[9 * ars]); step(&s10, ap[10 * ars]); step(&s11, ap[11 * ars]) }
                bp += 128
                ap += aps
            }
            @inline(__always) func finish(_ s: V, _ r: Int) {
                let p = c + r * ldc + col
                var x = s
                switch mode {
                case .overwrite: break
                case .accumulate: x += load(p)
                case .bias: x += load(bias! + col)
                }
                store(x, p)
            }
            finish(s0, 0); finish(s1, 1); finish(s2, 2); finish(s3, 3)
            if rows > 4 { finish(s4, 4); finish(s5, 5); finish(s6, 6); finish(s7, 7) }
            if rows > 8 { finish(s8, 8); finish(s9, 9); finish(s10, 10); finish(s11, 11) }
            col += lanes
        }
    }
}

extension Body {
    /// Each lane rounded to bfloat16 (to nearest, ties to even; a NaN becomes the quiet NaN of its
    /// sign, as `BFloat16.init` does), in the low 16 bits of the lane.
    @_transparent public static func bf16Bits(_ x: V) -> I.U {
        let b = unsafeBitCast(x, to: I.U.self)
        let rounded = (b &+ 0x7FFF &+ ((b &>> 16) & 1)) &>> 16
        let nan = (b & 0x7FFF_FFFF) .> 0x7F80_0000
        return rounded.replacing(with: 0x7FC0 | ((b &>> 16) & 0x8000), where: nan)
    }

    /// One float rounded to bfloat16 as `bf16Bits` rounds each lane.
    @_transparent public static func bf16Bits(_ x: Float) -> UInt32 {
        let b = x.bitPattern
        return (b & 0x7FFF_FFFF) > 0x7F80_0000 ? 0x7FC0 | ((b >> 16) & 0x8000) : (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16
    }

    /// See `BF16Rows`.
    @inlinable @inline(__always)
    public static func bf16Rows(_ src: UnsafePointer<Float>, _ count: Int, _ dst: UnsafeMutablePointer<UInt32>) {
        // 2·lanes floats make `lanes` words: the even lanes of each vector low, the odd high.
        var i = 0
        let raw = UnsafeMutableRawPointer(dst)
        while i + lanes <= count {
            let w = I.pairWords(bf16Bits(load(src + 2 * i)), bf16Bits(load(src + 2 * i + lanes)))
            raw.storeBytes(of: w, toByteOffset: 4 * i, as: I.U.self)
            i += lanes
        }
        while i < count {
            dst[i] = bf16Bits(src[2 * i]) | (bf16Bits(src[2 * i + 1]) &<< 16)
            i += 1
        }
    }

    /// See `BF16Interleave`.
    @inlinable @inline(__always)
    public static func bf16Interleave(_ lo: UnsafePointer<Float>, _ hi: UnsafePointer<Float>, _ count: Int, _ dst: UnsafeMutablePointer<UInt32>) {
        var i = 0
        let raw = UnsafeMutableRawPointer(dst)
        while i + lanes <= count {
            let w = bf16Bits(load(lo + i)) | (bf16Bits(load(hi + i)) &<< 16)
            raw.storeBytes(of: w, toByteOffset: 4 * i, as: I.U.self)
            i += lanes
        }
        while i < count {
            dst[i] = bf16Bits(lo[i]) | (bf16Bits(hi[i]) &<< 16)
            i += 1
        }
    }
}
