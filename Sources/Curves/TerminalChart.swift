import Foundation
import RunStore

/// Line charts drawn with text: braille dots (2×4 per character) when the terminal speaks UTF-8,
/// plain ASCII otherwise; optional ANSI colour per run.
public enum TerminalChart {
    /// How to draw.
    public struct Style: Sendable {
        public var unicode: Bool
        public var color: Bool
        public init(unicode: Bool, color: Bool) { self.unicode = unicode; self.color = color }

        /// From the environment: UTF-8 when the locale says so, colour only on a terminal without NO_COLOR.
        public static func detect(isTTY: Bool) -> Style {
            let env = ProcessInfo.processInfo.environment
            let locale = env["LC_ALL"] ?? env["LC_CTYPE"] ?? env["LANG"] ?? ""
            let utf8 = locale.uppercased().contains("UTF-8") || locale.uppercased().contains("UTF8")
            return Style(unicode: utf8, color: isTTY && env["NO_COLOR"] == nil)
        }
    }

    static let palette = ["\u{1B}[36m", "\u{1B}[33m", "\u{1B}[35m", "\u{1B}[32m", "\u{1B}[34m", "\u{1B}[31m"]
    static let reset = "\u{1B}[0m", dim = "\u{1B}[2m", bold = "\u{1B}[1m"

    /// One panel: a title line with the last, min and max values, the plot with a y axis, and an
    /// x axis with step labels. `smooth` (α) draws the EMA over the raw series. Returns `height`
    /// lines or fewer (a message when there is nothing to draw).
    public static func panel(metric: String, series: [Series], width: Int, height: Int, style: Style, smooth: Double? = nil) -> [String] {
        let w = max(30, width), h = max(4, height)
        var title = style.color ? bold + metric + reset : metric
        var notes: [String] = []
        let multi = series.count > 1
        for (i, s) in series.enumerated() {
            let f = s.finite
            guard let last = f.last else { continue }
            let lo = f.map(\.1).min()!, hi = f.map(\.1).max()!
            var part = "last \(Ticks.label(last.1))  min \(Ticks.label(lo))  max \(Ticks.label(hi))"
            if multi { part = "\(s.run): " + part }
            if style.color && multi { part = palette[i % palette.count] + part + reset }
            notes.append(part)
        }
        let skipped = series.reduce(0) { $0 + $1.nonFinite }
        if skipped > 0 && notes.count > 0 { notes.append("(\(skipped) NaN/inf skipped)") }
        // Keep the title within the width: drop notes from the end, then cut.
        while !notes.isEmpty && visibleWidth(title + "   " + notes.joined(separator: "   ")) > w { notes.removeLast() }
        if !notes.isEmpty { title += "   " + notes.joined(separator: "   ") }
        if visibleWidth(title) > w { title = String(metric.prefix(w)) }
        let allFinite = series.flatMap(\.finite)
        guard !allFinite.isEmpty else {
            let why = series.allSatisfy({ $0.points.isEmpty }) ? "no data yet" : "no finite values (\(skipped) NaN or infinite)"
            return [title, "  (\(why))"]
        }
        let plotRows = h - 2
        let (ylo, yhi) = Ticks.range(allFinite.map(\.1))
        let (xlo0, xhi0) = Ticks.range(allFinite.map(\.0))
        let (xlo, xhi) =
            allFinite.count == 1 ? (xlo0, xhi0) : (allFinite.map(\.0).min()!, max(allFinite.map(\.0).max()!, allFinite.map(\.0).min()! + 1e-12))
        let yTicks = Ticks.nice(ylo, yhi, count: max(2, min(5, plotRows / 2 + 1)))
        let labelWidth = max(yTicks.map { Ticks.label($0).count }.max() ?? 1, Ticks.label(ylo).count, Ticks.label(yhi).count)
        let cols = w - labelWidth - 2
        let (sx, sy) = style.unicode ? (2, 4) : (1, 1)
        let dotsW = cols * sx, dotsH = plotRows * sy
        // Canvas of dots; each cell remembers the last series that drew in it (its colour).
        var dots = [[Bool]](repeating: [Bool](repeating: false, count: dotsW), count: dotsH)
        var owner = [[Int]](repeating: [Int](repeating: -1, count: cols), count: plotRows)
        var faint = [[Bool]](repeating: [Bool](repeating: false, count: cols), count: plotRows)
        func px(_ x: Double) -> Int { xhi > xlo ? Int(((x - xlo) / (xhi - xlo) * Double(dotsW - 1)).rounded()) : dotsW / 2 }
        func py(_ y: Double) -> Int { dotsH - 1 - Int(((y - ylo) / (yhi - ylo) * Double(dotsH - 1)).rounded()) }
        func plot(_ pts: [(Double, Double)], _ who: Int, raw: Bool) {
            var prev: (Int, Int)?
            for (x, y) in pts {
                let p = (min(max(px(x), 0), dotsW - 1), min(max(py(y), 0), dotsH - 1))
                let line = prev.map { bresenham($0, p) } ?? [p]
                for (a, b) in line {
                    dots[b][a] = true
                    owner[b / sy][a / sx] = who
                    faint[b / sy][a / sx] = raw
                }
                prev = p
            }
        }
        for (i, s) in series.enumerated() {
            if let alpha = smooth, alpha > 0 {
                plot(s.finite, i, raw: true)
                plot(s.smoothed(alpha).points, i, raw: false)
            } else {
                plot(s.finite, i, raw: false)
            }
        }
        // Rows, with y labels at the rows nearest the ticks.
        var labelAt: [Int: String] = [:]
        for t in yTicks {
            let r = py(t) / sy
            if r >= 0 && r < plotRows && labelAt[r] == nil { labelAt[r] = Ticks.label(t) }
        }
        var lines = [title]
        for r in 0..<plotRows {
            var row = ""
            var current = -2
            for c in 0..<cols {
                var ch: Character = " "
                if style.unicode {
                    var bits = 0
                    let map = [(0, 0, 0x01), (0, 1, 0x02), (0, 2, 0x04), (1, 0, 0x08), (1, 1, 0x10), (1, 2, 0x20), (0, 3, 0x40), (1, 3, 0x80)]
                    for (dx, dy, bit) in map where dots[r * 4 + dy][c * 2 + dx] { bits |= bit }
                    if bits != 0 { ch = Character(Unicode.Scalar(0x2800 + bits)!) }
                } else if dots[r][c] {
                    ch = "*"
                }
                if style.color {
                    let want = ch == " " ? -1 : owner[r][c] * 2 + (faint[r][c] ? 1 : 0)
                    if want != current {
                        row += reset
                        if want >= 0 { row += (faint[r][c] ? dim : "") + palette[owner[r][c] % palette.count] }
                        current = want
                    }
                }
                row.append(ch)
            }
            if style.color { row += reset }
            let label = labelAt[r] ?? ""
            let axis = style.unicode ? (labelAt[r] != nil ? "┤" : "│") : (labelAt[r] != nil ? "+" : "|")
            lines.append(String(repeating: " ", count: labelWidth - label.count) + label + " " + axis + row)
        }
        // X axis: the first and last step, and one in the middle when there is room.
        let integral = allFinite.allSatisfy { $0.0 == $0.0.rounded() }
        let middle = integral ? ((xlo + xhi) / 2).rounded(.down) : (xlo + xhi) / 2
        let left = Ticks.label(xlo), right = Ticks.label(xhi), mid = Ticks.label(middle)
        var xaxis = [Character](repeating: " ", count: cols)
        func put(_ s: String, at pos: Int) { for (k, ch) in s.enumerated() where pos + k >= 0 && pos + k < cols { xaxis[pos + k] = ch } }
        put(left, at: 0)
        if cols > left.count + right.count + mid.count + 6 && xhi > xlo && middle > xlo && middle < xhi {
            put(mid, at: px(middle) / sx - mid.count / 2)
        }
        if xhi > xlo { put(right, at: cols - right.count) }
        let footer = String(repeating: " ", count: labelWidth + 2) + String(xaxis)
        lines.append(footer.replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression))
        return lines
    }

    /// The legend line for several runs.
    public static func legend(_ runs: [String], style: Style) -> String {
        runs.enumerated().map { i, r in
            let mark = style.unicode ? "━━" : "--"
            return style.color ? palette[i % palette.count] + mark + reset + " " + r : mark + " " + r + (style.color ? "" : " (\(i + 1))")
        }.joined(separator: "   ")
    }

    /// Columns of a line, not counting ANSI escape sequences.
    static func visibleWidth(_ s: String) -> Int {
        var n = 0, esc = false
        for u in s.unicodeScalars {
            if esc { if (0x40...0x7E).contains(u.value) && u != "[" { esc = false }; continue }
            if u == "\u{1B}" { esc = true; continue }
            n += 1
        }
        return n
    }

    static func bresenham(_ a: (Int, Int), _ b: (Int, Int)) -> [(Int, Int)] {
        var (x0, y0) = a
        let (x1, y1) = b
        let dx = abs(x1 - x0), dy = -abs(y1 - y0)
        let sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1
        var err = dx + dy
        var out: [(Int, Int)] = []
        while true {
            out.append((x0, y0))
            if x0 == x1 && y0 == y1 { break }
            let e2 = 2 * err
            if e2 >= dy { err += dy; x0 += sx }
            if e2 <= dx { err += dx; y0 += sy }
        }
        return out
    }
}

/// Several runs' curves as terminal panels, one per metric.
public enum CurvesView {
    /// Loads the series of each run for `stage` and `metrics`.
    public static func load(runs: [(name: String, store: RunStore)], stage: String, metrics: [String]) throws -> [(metric: String, series: [Series])]
    {
        var byMetric: [String: [Series]] = [:]
        for r in runs {
            let (_, series) = try r.store.series(stage: stage, metrics: metrics, runName: r.name)
            for s in series { byMetric[s.metric, default: []].append(s) }
        }
        return metrics.map { ($0, byMetric[$0] ?? []) }
    }

    /// The whole text: a legend when there are several runs, then the panels.
    public static func render(
        _ panels: [(metric: String, series: [Series])], width: Int, panelHeight: Int, style: TerminalChart.Style, smooth: Double?
    ) -> [String] {
        var lines: [String] = []
        let runs = panels.first?.series.map(\.run) ?? []
        if runs.count > 1 { lines.append(TerminalChart.legend(runs, style: style)) }
        for p in panels {
            lines += TerminalChart.panel(metric: p.metric, series: p.series, width: width, height: panelHeight, style: style, smooth: smooth)
            lines.append("")
        }
        return lines
    }
}
