/// The arithmetic of the matrix products (`--precision`).
///
/// Mixed precision as PyTorch's autocast does it on a CPU: in `bf16` the operands of every
/// product of a forward or backward pass and of sampling are rounded to bfloat16 (to nearest,
/// ties to even) and their products summed in single precision; the master weights, the
/// gradients they accumulate into, AdamW, the norms, softmax, losses and every other reduction
/// stay single precision.
public enum Precision: String, Codable, CaseIterable, Sendable {
    /// Single precision throughout (the default).
    case f32
    /// bfloat16 operands, single-precision sums.
    case bf16
}

extension Kernels {
    /// The precision the products run in; set once by a command before its work starts.
    nonisolated(unsafe) public static var precision: Precision = .f32

    /// Runs `body` with the products in `precision`, then restores the previous one. For tests
    /// and benchmarks; not for use while other threads run kernels.
    public static func using<T>(precision: Precision, _ body: () throws -> T) rethrows -> T {
        let saved = Kernels.precision
        Kernels.precision = precision
        defer { Kernels.precision = saved }
        return try body()
    }
}
