import KernelBodies

// Vector helpers over float arrays, run by the active kernel path (see `Kernels`).

/// Copies n floats with inline moves: for the short runs (a head's 32–64 floats, a panel row)
/// that a memmove call would cost more than the copy. Four-float vectors exist on every CPU.
@inline(__always) func copyFloats(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>, _ n: Int) {
    var i = 0
    while i + 4 <= n {
        UnsafeMutableRawPointer(dst + i).storeBytes(of: UnsafeRawPointer(src + i).loadUnaligned(as: SIMD4<Float>.self), as: SIMD4<Float>.self)
        i += 4
    }
    while i < n { dst[i] = src[i]; i += 1 }
}

/// Σ a[i]·b[i] over n elements.
@inline(__always) func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ n: Int) -> Float {
    Kernels.active.dot(a, b, n)
}

/// y[i] += alpha·x[i] over n elements.
@inline(__always) func axpy(_ alpha: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    Kernels.active.axpy(alpha, x, y, n)
}

/// y[i] += x[i] over n elements.
@inline(__always) func addInPlace(_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    Kernels.active.addInPlace(x, y, n)
}

/// y[i] *= alpha over n elements.
@inline(__always) func scaleInPlace(_ alpha: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) {
    Kernels.active.scaleInPlace(alpha, y, n)
}

/// Maximum of n ≥ 1 elements without NaN.
@inline(__always) func maxElement(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
    Kernels.active.maxElement(x, n)
}

/// Writes exp(x[i] - shift) into y and returns their sum.
@inline(__always) func expShiftSum(_ x: UnsafePointer<Float>, _ shift: Float, _ y: UnsafeMutablePointer<Float>, _ n: Int) -> Float {
    Kernels.active.expShiftSum(x, shift, y, n)
}
