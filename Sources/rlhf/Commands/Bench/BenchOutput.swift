import Foundation
import TransformerCore

/// Prints bench results as text or JSON lines. Every JSON line carries the kernel path (`isa`)
/// and the precision of the products (`precision`) it was measured with, unless the row sets
/// its own.
final class BenchOutput {
    let json: Bool
    init(json: Bool) { self.json = json }

    /// The first lines of the text output: what runs, then the CPU it runs on.
    func header(_ s: String) {
        if !json { print("rlhf bench (\(s))"); print("cpu".column(28) + CPUDescription.current) }
    }

    /// A line of the text output with no JSON line of its own (its figures are in a row's fields).
    func textOnly(_ text: String) { if !json { print(text) } }

    func emit(_ fields: [String: Any], text: String) {
        if json {
            var fields = fields
            if fields["isa"] == nil { fields["isa"] = Kernels.activePath.rawValue }
            if fields["precision"] == nil { fields["precision"] = Kernels.precision.rawValue }
            if fields["cpu"] == nil { fields["cpu"] = CPUDescription.current }
            let order = ["what", "isa", "precision", "cpu", "impl", "phase", "config", "m", "k", "n", "B", "T", "batch", "prompt", "new"]
            var keys = order.filter { fields[$0] != nil }
            keys += fields.keys.filter { !order.contains($0) }.sorted()
            let parts = keys.map { k -> String in
                let v = fields[k]!
                if let s = v as? String { return "\"\(k)\":" + JSONText.quote(s) }
                return "\"\(k)\":\(v)"
            }
            print("{" + parts.joined(separator: ",") + "}")
        } else {
            print(text)
        }
    }
}

func round2(_ x: Double) -> Double { (x * 100).rounded() / 100 }
func round3(_ x: Double) -> Double { (x * 1000).rounded() / 1000 }
func round5(_ x: Double) -> Double { (x * 100_000).rounded() / 100_000 }
func fmt(_ x: Double) -> String { String(format: x >= 100 ? "%.0f" : "%.2f", x) }

/// Peak resident set size of this process, in bytes.
func peakResidentBytes() -> Int {
    var usage = rusage()
    #if os(Linux)
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return usage.ru_maxrss * 1024 // kilobytes on Linux
    #else
    getrusage(RUSAGE_SELF, &usage)
    return usage.ru_maxrss // bytes on macOS
    #endif
}

/// The tag of a text row measured in bfloat16 products, " [bf16]" (f32 rows have none, as
/// before), set apart from the " bf16" of frozen bfloat16 weights.
var precisionTag: String { Kernels.precision == .f32 ? "" : " [\(Kernels.precision.rawValue)]" }

extension String {
    /// Padded with spaces to `width` characters for a column of figures; a longer label is
    /// kept whole, followed by two spaces, never cut.
    func column(_ width: Int) -> String { count >= width ? self + "  " : padding(toLength: width, withPad: " ", startingAt: 0) }
}
