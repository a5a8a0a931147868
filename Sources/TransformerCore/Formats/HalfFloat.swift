/// IEEE 754 binary16 ("F16" in safetensors, `torch.float16`) to and from `Float`, by hand.
///
/// Swift's `Float16` is not available on macOS for x86-64 (Intel Macs), so the loaders and
/// writers convert the bits themselves; the tests check both directions against `Float16` where
/// it exists.
public enum HalfFloat {
    /// The float a binary16 bit pattern stands for: exact for every finite value (binary16 ⊂
    /// binary32); infinities stay infinities; a NaN stays a NaN, its payload kept in the top
    /// mantissa bits and made quiet, as the hardware conversions do.
    @inline(__always)
    public static func float(fromBits h: UInt16) -> Float {
        let sign = UInt32(h & 0x8000) << 16
        let exponent = UInt32(h >> 10) & 0x1F
        let mantissa = UInt32(h & 0x3FF)
        switch exponent {
        case 0x1F:
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13) | (mantissa != 0 ? 0x40_0000 : 0))
        case 0:
            // zero or subnormal: mantissa · 2⁻²⁴, exact in binary32
            let magnitude = Float(mantissa) * 0x1p-24
            return Float(bitPattern: sign | magnitude.bitPattern)
        default:
            return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
        }
    }

    /// `x` rounded to the nearest binary16, ties to even: what `torch.Tensor.half()` and
    /// numpy's `astype(float16)` give. Magnitudes that round past 65504 become infinity; NaN
    /// stays a (quiet) NaN.
    @inline(__always)
    public static func bits(from x: Float) -> UInt16 {
        let b = x.bitPattern
        let sign = UInt16(truncatingIfNeeded: (b >> 16) & 0x8000)
        let exponent = Int((b >> 23) & 0xFF)
        let mantissa = b & 0x7F_FFFF
        if exponent == 0xFF {
            return sign | 0x7C00 | (mantissa != 0 ? 0x200 | UInt16(truncatingIfNeeded: mantissa >> 13) : 0)
        }
        let e = exponent - 127 + 15 // the binary16 exponent field, before rounding
        if e >= 0x1F { return sign | 0x7C00 }
        if e <= 0 {
            // A binary16 subnormal (or zero): the 24-bit significand shifted right by 14 − e.
            if e < -10 { return sign } // below half the smallest subnormal: ±0
            let significand = mantissa | 0x80_0000
            let shift = UInt32(14 - e)
            var r = significand >> shift
            let rest = significand & ((1 << shift) - 1), half = UInt32(1) << (shift - 1)
            if rest > half || (rest == half && r & 1 == 1) { r += 1 } // may become the smallest normal: right
            return sign | UInt16(r)
        }
        var r = UInt32(e) << 10 | (mantissa >> 13)
        let rest = mantissa & 0x1FFF
        if rest > 0x1000 || (rest == 0x1000 && r & 1 == 1) { r += 1 } // a carry into the exponent is right, up to infinity
        return sign | UInt16(r)
    }
}
