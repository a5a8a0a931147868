/// A bfloat16 number: the upper 16 bits of a Float (sign, 8 exponent bits, 7 mantissa bits).
/// Widening to Float is exact (a shift); narrowing rounds to nearest, ties to even.
@frozen
public struct BFloat16: Equatable, Sendable {
    public var bits: UInt16

    @inlinable public init(bits: UInt16) { self.bits = bits }

    /// `x` rounded to the nearest bfloat16, ties to even; a NaN stays a (quiet) NaN and
    /// infinities stay infinite. Values beyond the largest finite bfloat16 round to infinity.
    @inlinable public init(_ x: Float) {
        if x.isNaN { bits = 0x7FC0 | UInt16(x.sign == .minus ? 0x8000 : 0); return }
        let b = x.bitPattern
        bits = UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }

    /// The value as a Float (exact).
    @inlinable public var float: Float { Float(bitPattern: UInt32(bits) << 16) }
}

/// An element type the weight-streaming kernels read B in: Float, or BFloat16 widened to Float
/// as it is loaded, so that frozen weights held in bfloat16 are streamed at half the bytes.
public protocol WeightElement {
    /// `I.V.scalarCount` consecutive elements from element `index` of `p`, as floats.
    static func vector<I: KernelISA>(_: I.Type, _ p: UnsafeRawPointer, _ index: Int) -> I.V
    /// Element `index` of `p` as a Float.
    static func scalar(_ p: UnsafeRawPointer, _ index: Int) -> Float
    /// Four consecutive elements from element `index` of `p` (the packing routines, which are
    /// compiled for no particular instruction set).
    static func four(_ p: UnsafeRawPointer, _ index: Int) -> SIMD4<Float>
}

extension Float: WeightElement {
    @inlinable @inline(__always)
    public static func vector<I: KernelISA>(_: I.Type, _ p: UnsafeRawPointer, _ index: Int) -> I.V {
        p.loadUnaligned(fromByteOffset: index &* 4, as: I.V.self)
    }
    @inlinable @inline(__always)
    public static func scalar(_ p: UnsafeRawPointer, _ index: Int) -> Float {
        p.loadUnaligned(fromByteOffset: index &* 4, as: Float.self)
    }
    @inlinable @inline(__always)
    public static func four(_ p: UnsafeRawPointer, _ index: Int) -> SIMD4<Float> {
        p.loadUnaligned(fromByteOffset: index &* 4, as: SIMD4<Float>.self)
    }
}

extension BFloat16: WeightElement {
    @inlinable @inline(__always)
    public static func vector<I: KernelISA>(_: I.Type, _ p: UnsafeRawPointer, _ index: Int) -> I.V {
        let h = p.loadUnaligned(fromByteOffset: index &* 2, as: I.H.self)
        return unsafeBitCast(I.widen(h) &<< 16, to: I.V.self)
    }
    @inlinable @inline(__always)
    public static func scalar(_ p: UnsafeRawPointer, _ index: Int) -> Float {
        Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: index &* 2, as: UInt16.self)) << 16)
    }
    @inlinable @inline(__always)
    public static func four(_ p: UnsafeRawPointer, _ index: Int) -> SIMD4<Float> {
        let h = p.loadUnaligned(fromByteOffset: index &* 2, as: SIMD4<UInt16>.self)
        // lane by lane: the standard conversion is a call the optimiser does not inline
        let u = SIMD4<UInt32>(UInt32(h[0]), UInt32(h[1]), UInt32(h[2]), UInt32(h[3]))
        return unsafeBitCast(u &<< 16, to: SIMD4<Float>.self)
    }
}

extension Body {
    /// A vector of B's elements from element `index` of `p`, widened to floats.
    @_transparent public static func wload<W: WeightElement>(_: W.Type, _ p: UnsafeRawPointer, _ index: Int) -> V {
        W.vector(I.self, p, index)
    }
}
