// Small SIMD helpers shared by the layer kernels. Each processes 16 floats per step and finishes
// the remainder with scalars, so any length works.

typealias F16 = SIMD16<Float>

@inline(__always) func vload(_ p: UnsafePointer<Float>) -> F16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16.self)
}
@inline(__always) func vload(_ p: UnsafeMutablePointer<Float>) -> F16 {
    UnsafeRawPointer(p).loadUnaligned(as: F16.self)
}
@inline(__always) func vstore(_ v: F16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: F16.self)
}

/// Copies n floats with inline vector moves: for the short runs (a head's 32–64 floats, a
/// 12-float panel row) that a memmove call would cost more than the copy.
@inline(__always) func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { vstore(vload(src + i), dst + i); i += 16 }
    if i + 8 <= n {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD8<Float>.self), as: SIMD8<Float>.self)
        i += 8
    }
    if i + 4 <= n {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
        i += 4
    }
    while i < n { dst[i] = src[i]; i += 1 }
}

/// Σ a[i]·b[i] over n elements.
@inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    var acc0 = F16(), acc1 = F16()
    var i = 0
    while i + 32 <= n {
        acc0 = acc0.addingProduct(vload(a + i), vload(b + i))
        acc1 = acc1.addingProduct(vload(a + i + 16), vload(b + i + 16))
        i += 32
    }
    if i + 16 <= n { acc0 = acc0.addingProduct(vload(a + i), vload(b + i)); i += 16 }
    var s = hsum(acc0 + acc1)
    while i < n { s += a[i] * b[i]; i += 1 }
    return s
}

/// y[i] += alpha·x[i] over n elements.
@inline(__always) func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    let av = F16(repeating: alpha)
    var i = 0
    while i + 16 <= n { vstore(vload(y + i).addingProduct(av, vload(x + i)), y + i); i += 16 }
    while i < n { y[i] += alpha * x[i]; i += 1 }
}

/// y[i] += x[i] over n elements.
@inline(__always) func addInPlace(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    while i + 16 <= n { vstore(vload(y + i) + vload(x + i), y + i); i += 16 }
    while i < n { y[i] += x[i]; i += 1 }
}

/// y[i] *= alpha over n elements.
@inline(__always) func scaleInPlace(_ alpha: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    var i = 0
    let av = F16(repeating: alpha)
    while i + 16 <= n { vstore(vload(y + i) * av, y + i); i += 16 }
    while i < n { y[i] *= alpha; i += 1 }
}

/// Lane-wise maximum for inputs without NaN. (The standard `pointwiseMax` follows IEEE
/// maximum's NaN rules, which the compiler often lowers to a scalar loop.)
@inline(__always) func vmax(_ a: F16, _ b: F16) -> F16 { a.replacing(with: b, where: a .< b) }

/// Largest lane of a vector without NaN, by halving.
@inline(__always) func hmax(_ v: F16) -> Float {
    let a = v.lowHalf.replacing(with: v.highHalf, where: v.lowHalf .< v.highHalf)
    let b = a.lowHalf.replacing(with: a.highHalf, where: a.lowHalf .< a.highHalf)
    let c = b.lowHalf.replacing(with: b.highHalf, where: b.lowHalf .< b.highHalf)
    return c[0] < c[1] ? c[1] : c[0]
}

/// Sum of a vector's lanes in lane order, as the standard `sum()` adds them, but inline: the
/// compiler often leaves `sum()` as an out-of-line call that passes the vector in four pieces.
@_transparent func hsum(_ v: F16) -> Float {
    var s = v[0]
    s += v[1]; s += v[2]; s += v[3]; s += v[4]; s += v[5]; s += v[6]; s += v[7]
    s += v[8]; s += v[9]; s += v[10]; s += v[11]; s += v[12]; s += v[13]; s += v[14]; s += v[15]
    return s
}

/// Maximum of n ≥ 1 elements.
@inline(__always) func maxElement(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    var m = -Float.infinity
    var i = 0
    if n >= 16 {
        var mv = F16(repeating: -.infinity)
        while i + 16 <= n { mv = vmax(mv, vload(x + i)); i += 16 }
        m = hmax(mv)
    }
    while i < n { m = Swift.max(m, x[i]); i += 1 }
    return m
}

/// A fast exp for SIMD16 lanes: range reduction to 2^k·e^r, |r| ≤ ln2/2, and a degree-6
/// polynomial; relative error about 2e-7 for x in [-87, 88]. Inputs below -87 give 0.
@_transparent func vexp(_ x: F16) -> F16 {
    let log2e: Float = 1.442695040888963
    // clamped with selects (NaN stays NaN), not pointwiseMin/Max, which lower to lane shuffles
    let lo = F16(repeating: -87.3), hi = F16(repeating: 88.3)
    let xc = x.replacing(with: lo, where: x .< lo).replacing(with: hi, where: x .> hi)
    // k = round(x·log2e) by adding 1.5·2²³: the integer lands in the low mantissa bits, which
    // avoids Swift's generic float→int vector conversion (a slow per-lane library call).
    let magic = F16(repeating: 12_582_912)
    let t = magic.addingProduct(xc, F16(repeating: log2e))
    let k = t - magic
    // r = x - k·ln2, with ln2 split in two for accuracy
    var r = xc.addingProduct(k, F16(repeating: -0.693145751953125))
    r = r.addingProduct(k, F16(repeating: -1.428606765330187e-06))
    var p = F16(repeating: 1.0 / 720.0)
    p = F16(repeating: 1.0 / 120.0).addingProduct(p, r)
    p = F16(repeating: 1.0 / 24.0).addingProduct(p, r)
    p = F16(repeating: 1.0 / 6.0).addingProduct(p, r)
    p = F16(repeating: 0.5).addingProduct(p, r)
    p = F16(repeating: 1.0).addingProduct(p, r)
    p = F16(repeating: 1.0).addingProduct(p, r)
    let bits = unsafeBitCast(t, to: SIMD16<UInt32>.self) &- 0x4B40_0000   // k as a 32-bit integer
    let scale = unsafeBitCast((bits &+ 127) &<< 23, to: F16.self)          // 2^k
    var result = p * scale
    result.replace(with: 0, where: x .< -87.0)
    return result
}

/// Writes exp(x[i] - shift) into y and returns their sum.
@inline(__always) func expShiftSum(_ x: UnsafePointer<Float>, _ shift: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    var acc = F16()
    let sv = F16(repeating: shift)
    var i = 0
    while i + 16 <= n {
        let e = vexp(vload(x + i) - sv)
        vstore(e, y + i); acc += e; i += 16
    }
    var s = hsum(acc)
    while i < n { let e = expf(x[i] - shift); y[i] = e; s += e; i += 1 }
    return s
}

import Foundation
