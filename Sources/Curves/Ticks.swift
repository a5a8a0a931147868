import Foundation

/// Axis ranges and "nice" tick values (1, 2 or 5 times a power of ten).
public enum Ticks {
    /// A range covering the values, widened when it is empty or a single value.
    public static func range(_ values: [Double]) -> (Double, Double) {
        guard let lo = values.min(), let hi = values.max() else { return (0, 1) }
        if hi > lo { return (lo, hi) }
        let pad = lo == 0 ? 1 : abs(lo) * 0.1
        return (lo - pad, hi + pad)
    }

    /// About `count` nice tick values inside [lo, hi].
    public static func nice(_ lo: Double, _ hi: Double, count: Int = 5) -> [Double] {
        guard lo.isFinite, hi.isFinite, hi > lo else { return [lo] }
        let raw = (hi - lo) / Double(max(1, count - 1))
        guard raw.isFinite, raw > 0 else { return [lo, hi] }
        let exponent = Int(floor(log10(raw)))
        let mag = pow(10, Double(exponent))
        let unit = [1.0, 2, 5, 10].first { $0 * mag >= raw } ?? 10
        let step = unit * mag
        guard step > 0, step.isFinite else { return [lo, hi] }
        // Tick k is k·unit·10^exponent, divided (not multiplied) by a power of ten when the
        // exponent is negative, so 3 × 0.2 comes out as 0.6 and not 0.6000000000000001.
        func value(_ k: Double) -> Double { exponent < 0 ? k * unit / pow(10, Double(-exponent)) : k * unit * mag }
        var out: [Double] = []
        var k = ceil(lo / step)
        while value(k) <= hi + step * 1e-9 && out.count < 50 { out.append(k == 0 ? 0 : value(k)); k += 1 }
        return out.isEmpty ? [lo, hi] : out
    }

    /// A short label: up to 4 significant digits, exponent form for very large or small values.
    public static func label(_ v: Double) -> String {
        if !v.isFinite { return v.isNaN ? "NaN" : (v > 0 ? "inf" : "-inf") }
        if v == 0 { return "0" }
        let a = abs(v)
        if a >= 1e5 || a < 1e-3 { return String(format: "%.2g", v) }
        var s = String(format: "%.4g", v)
        if s.contains(".") && !s.contains("e") {
            while s.hasSuffix("0") { s.removeLast() }
            if s.hasSuffix(".") { s.removeLast() }
        }
        return s
    }
}
