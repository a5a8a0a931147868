#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

// Vector helpers over float arrays. Each processes whole vectors and finishes the remainder with
// scalars, so any length works.
extension Body {
    /// Σ a[i]·b[i] over n elements.
    @inlinable @inline(__always)
    public static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
        let l = lanes
        var acc0 = V(), acc1 = V()
        var i = 0
        while i + 2 * l <= n {
            acc0 = madd(acc0, load(a + i), load(b + i))
            acc1 = madd(acc1, load(a + i + l), load(b + i + l))
            i += 2 * l
        }
        if i + l <= n { acc0 = madd(acc0, load(a + i), load(b + i)); i += l }
        var s = hsum(acc0 + acc1)
        while i < n { s += a[i] * b[i]; i += 1 }
        return s
    }

    /// y[i] += alpha·x[i] over n elements.
    @inlinable @inline(__always)
    public static func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let av = splat(alpha), l = lanes
        var i = 0
        while i + l <= n { store(madd(load(y + i), av, load(x + i)), y + i); i += l }
        while i < n { y[i] += alpha * x[i]; i += 1 }
    }

    /// y[i] += x[i] over n elements.
    @inlinable @inline(__always)
    public static func addInPlace(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let l = lanes
        var i = 0
        while i + l <= n { store(load(y + i) + load(x + i), y + i); i += l }
        while i < n { y[i] += x[i]; i += 1 }
    }

    /// out[i] = a[i] + b[i] over n elements (out may alias either).
    @inlinable @inline(__always)
    public static func add(_ out: UnsafeMutablePointer<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) {
        let l = lanes
        var i = 0
        while i + l <= n { store(load(a + i) + load(b + i), out + i); i += l }
        while i < n { out[i] = a[i] + b[i]; i += 1 }
    }

    /// y[i] *= alpha over n elements.
    @inlinable @inline(__always)
    public static func scaleInPlace(_ alpha: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
        let av = splat(alpha), l = lanes
        var i = 0
        while i + l <= n { store(load(y + i) * av, y + i); i += l }
        while i < n { y[i] *= alpha; i += 1 }
    }

    /// Maximum of n ≥ 1 elements without NaN.
    @inlinable @inline(__always)
    public static func maxElement(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        let l = lanes
        var m = -Float.infinity
        var i = 0
        if n >= l {
            var mv = splat(-.infinity)
            while i + l <= n { mv = vmax(mv, load(x + i)); i += l }
            m = hmax(mv)
        }
        while i < n { m = Swift.max(m, x[i]); i += 1 }
        return m
    }

    /// Writes exp(x[i] − shift) into y and returns their sum.
    @inlinable @inline(__always)
    public static func expShiftSum(_ x: UnsafePointer<Float>, _ shift: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
        let l = lanes
        var acc = V()
        let sv = splat(shift)
        var i = 0
        while i + l <= n {
            let e = exp(load(x + i) - sv)
            store(e, y + i); acc += e; i += l
        }
        var s = hsum(acc)
        while i < n { let e = expf(x[i] - shift); y[i] = e; s += e; i += 1 }
        return s
    }

    /// Σ x[i]² in double precision, for the global gradient norm.
    @inlinable @inline(__always)
    public static func sumOfSquares(_ x: UnsafePointer<Float>, _ n: Int) -> Double {
        let l = lanes
        var acc = I.D()
        var i = 0
        while i + l <= n {
            let v = load(x + i)
            var d = I.D()
            for j in 0..<l { d[j] = Double(v[j]) }
            acc = I.fused ? acc.addingProduct(d, d) : acc + d * d
            i += l
        }
        var s: Double = 0
        for j in 0..<l { s += acc[j] }
        while i < n { s += Double(x[i]) * Double(x[i]); i += 1 }
        return s
    }
}
