import Foundation

/// Progress of long work on standard error: a bar with rate and ETA, redrawn in place, when
/// stderr is a terminal; otherwise a plain line every few seconds (for logs and CI).
public final class ProgressBar {
    private let label: String
    private let total: Int
    private let unit: String
    private let start = Date()
    private var lastDraw = Date()
    private var done = 0
    private var extra = ""
    private let isTTY: Bool
    private let enabled: Bool
    /// Counts are bytes: shown as "12.3 MB", rates as "4.56 MB/s".
    private var countsBytes = false

    /// A bar for `total` steps of `unit` (total 0: unknown). Nothing is drawn when `enabled` is false.
    public init(_ label: String, total: Int, unit: String = "it", enabled: Bool = true) {
        self.label = label; self.total = total; self.unit = unit; self.enabled = enabled
        isTTY = isatty(2) == 1
    }

    /// A bar for `total` bytes (a download, say), its counts and rate shown in kB, MB and GB.
    public convenience init(_ label: String, bytes total: Int, enabled: Bool = true) {
        self.init(label, total: total, unit: "B", enabled: enabled)
        countsBytes = true
    }

    /// Prints a line of its own above the bar (the bar's line is cleared first on a terminal and
    /// redrawn at the next update).
    public func log(_ line: String) {
        guard enabled else { return }
        FileHandle.standardError.write(Data(((isTTY ? "\r\u{1B}[2K" : "") + line + "\n").utf8))
    }

    /// Records `n` steps done so far; `note` is shown after the bar (loss, for example).
    public func update(_ n: Int, note: String = "") {
        done = n; extra = note
        let now = Date()
        let interval = isTTY ? 0.1 : 5.0
        if now.timeIntervalSince(lastDraw) >= interval {
            lastDraw = now
            draw(final: false)
        }
    }

    /// Draws the final state and ends the line.
    public func finish(note: String? = nil) {
        if let note { extra = note }
        draw(final: true)
    }

    private func draw(final: Bool) {
        guard enabled else { return }
        let elapsed = max(Date().timeIntervalSince(start), 1e-9)
        let rate = Double(done) / elapsed
        var s = "\(label) "
        if total > 0 {
            let frac = min(1, Double(done) / Double(total))
            if isTTY {
                let width = 24
                let filled = Int(frac * Double(width))
                s += "[" + String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled) + "] "
            }
            s +=
                countsBytes
                ? "\(Self.bytes(Double(done)))/\(Self.bytes(Double(total))) \(Self.bytes(rate))/s" : "\(done)/\(total) \(Self.short(rate)) \(unit)/s"
            if !final && done < total && rate > 0 { s += " ETA \(Self.duration(Double(total - done) / rate))" }
            if final { s += " in \(Self.duration(elapsed))" }
        } else {
            s += countsBytes ? "\(Self.bytes(Double(done))) \(Self.bytes(rate))/s" : "\(done) \(unit) \(Self.short(rate)) \(unit)/s"
        }
        if !extra.isEmpty { s += "  " + extra }
        let line = isTTY ? "\r\u{1B}[2K" + s + (final ? "\n" : "") : s + "\n"
        FileHandle.standardError.write(Data(line.utf8))
    }

    static func short(_ x: Double) -> String {
        if x >= 100 { return String(format: "%.0f", x) }
        if x >= 10 { return String(format: "%.1f", x) }
        return String(format: "%.2f", x)
    }

    /// A byte count in decimal units: "512 B", "1.23 kB", "45.6 MB", "2.50 GB".
    public static func bytes(_ n: Double) -> String {
        let units = ["B", "kB", "MB", "GB", "TB"]
        var x = n, i = 0
        while x >= 1000 && i < units.count - 1 { x /= 1000; i += 1 }
        return i == 0 ? "\(Int(x)) B" : "\(short(x)) \(units[i])"
    }

    /// "1m05s", "42s", "1h02m".
    public static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "?" }
        let t = Int(s.rounded())
        if t >= 3600 { return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60) }
        if t >= 60 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return "\(t)s"
    }
}
