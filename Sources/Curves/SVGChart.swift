import Foundation

/// Standalone SVG charts: one panel per metric with axes, gridlines, tick labels and one path
/// per series, a legend and a title.
public enum SVGChart {
    static let colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b"]

    /// Text for SVG/HTML: control characters made visible, then &, <, >, " and ' escaped.
    public static func escape(_ s: String) -> String {
        var out = ""
        for u in s.unicodeScalars {
            switch u {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&quot;"
            case "'": out += "&#39;"
            default:
                if u.value < 0x20 && u != "\n" && u != "\t" || (0x7F...0x9F).contains(u.value) {
                    out += String(format: "\\x%02x", u.value)
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        return out
    }

    static func fmt(_ v: Double) -> String { String(format: "%.2f", v) }

    /// One panel as an SVG group at (x, y) of size w×h. Each series is one `<path class="series">`
    /// whose `data-points` attribute counts its finite points; NaN and infinite values break the
    /// line (a new subpath) and are counted in `data-skipped`.
    public static func panel(metric: String, series: [Series], x: Double, y: Double, w: Double, h: Double, smooth: Double? = nil) -> String {
        var out = "<g class=\"panel\" data-metric=\"\(escape(metric))\" transform=\"translate(\(fmt(x)),\(fmt(y)))\">\n"
        out += "<text x=\"0\" y=\"14\" class=\"ptitle\">\(escape(metric))</text>\n"
        let left = 58.0, top = 24.0, right = 12.0, bottom = 26.0
        let pw = w - left - right, ph = h - top - bottom
        let finite = series.flatMap(\.finite)
        out += "<rect x=\"\(fmt(left))\" y=\"\(fmt(top))\" width=\"\(fmt(pw))\" height=\"\(fmt(ph))\" class=\"frame\"/>\n"
        guard !finite.isEmpty else {
            out += "<text x=\"\(fmt(left + pw / 2))\" y=\"\(fmt(top + ph / 2))\" text-anchor=\"middle\" class=\"empty\">no data</text>\n"
            for s in series {
                out += "<path class=\"series\" data-run=\"\(escape(s.run))\" data-points=\"0\" data-skipped=\"\(s.nonFinite)\" d=\"\"/>\n"
            }
            return out + "</g>\n"
        }
        let (ylo, yhi) = Ticks.range(finite.map(\.1))
        var (xlo, xhi) = Ticks.range(finite.map(\.0))
        if finite.count > 1, let a = finite.map(\.0).min(), let b = finite.map(\.0).max(), b > a { xlo = a; xhi = b }
        func sx(_ v: Double) -> Double { left + (v - xlo) / (xhi - xlo) * pw }
        func sy(_ v: Double) -> Double { top + ph - (v - ylo) / (yhi - ylo) * ph }
        for t in Ticks.nice(ylo, yhi) {
            out += "<line x1=\"\(fmt(left))\" x2=\"\(fmt(left + pw))\" y1=\"\(fmt(sy(t)))\" y2=\"\(fmt(sy(t)))\" class=\"grid\"/>"
            out += "<text x=\"\(fmt(left - 6))\" y=\"\(fmt(sy(t) + 4))\" text-anchor=\"end\" class=\"tick\">\(escape(Ticks.label(t)))</text>\n"
        }
        let integralSteps = finite.allSatisfy { $0.0 == $0.0.rounded() }
        for t in Ticks.nice(xlo, xhi, count: 6) where !integralSteps || t == t.rounded() {
            out += "<line x1=\"\(fmt(sx(t)))\" x2=\"\(fmt(sx(t)))\" y1=\"\(fmt(top))\" y2=\"\(fmt(top + ph))\" class=\"grid\"/>"
            out += "<text x=\"\(fmt(sx(t)))\" y=\"\(fmt(top + ph + 16))\" text-anchor=\"middle\" class=\"tick\">\(escape(Ticks.label(t)))</text>\n"
        }
        out += "<text x=\"\(fmt(left + pw))\" y=\"\(fmt(h - 2))\" text-anchor=\"end\" class=\"axis\">step</text>\n"
        for (i, s) in series.enumerated() {
            let color = colors[i % colors.count]
            func path(_ pts: [(Double, Double)]) -> (String, Int) {
                var d = "", n = 0, pen = false
                for (px, py) in pts {
                    guard px.isFinite && py.isFinite else { pen = false; continue }
                    d += (pen ? "L" : "M") + fmt(sx(px)) + " " + fmt(sy(py)) + " "
                    pen = true; n += 1
                }
                return (d.trimmingCharacters(in: .whitespaces), n)
            }
            let (d, n) = path(s.points)
            let raw = smooth.map { $0 > 0 } ?? false
            out +=
                "<path class=\"series\" data-run=\"\(escape(s.run))\" data-points=\"\(n)\" data-skipped=\"\(s.nonFinite)\" d=\"\(d)\" stroke=\"\(color)\" fill=\"none\" stroke-width=\"1.5\"\(raw ? " stroke-opacity=\"0.3\"" : "")/>\n"
            if n == 1, let p = s.finite.first {
                out += "<circle cx=\"\(fmt(sx(p.0)))\" cy=\"\(fmt(sy(p.1)))\" r=\"3\" fill=\"\(color)\"/>\n"
            }
            if let alpha = smooth, alpha > 0, n > 0 {
                let (ds, ns) = path(s.smoothed(alpha).points)
                out +=
                    "<path class=\"smoothed\" data-run=\"\(escape(s.run))\" data-points=\"\(ns)\" d=\"\(ds)\" stroke=\"\(color)\" fill=\"none\" stroke-width=\"2\"/>\n"
            }
        }
        return out + "</g>\n"
    }

    /// A whole SVG document: a title, a legend of runs, and the panels in a grid of `columns`.
    public static func document(title: String, panels: [(metric: String, series: [Series])], columns: Int = 2, smooth: Double? = nil) -> String {
        let pw = 460.0, ph = 240.0, cols = max(1, min(columns, panels.count))
        let rows = (panels.count + cols - 1) / cols
        let runs = Array(Set(panels.flatMap { $0.series.map(\.run) })).sorted { a, b in
            let order = panels.first?.series.map(\.run) ?? []
            return (order.firstIndex(of: a) ?? 99, a) < (order.firstIndex(of: b) ?? 99, b)
        }
        let width = Double(cols) * pw + 20, height = Double(rows) * ph + 70
        var out =
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height))\" viewBox=\"0 0 \(Int(width)) \(Int(height))\" font-family=\"sans-serif\">\n"
        out +=
            "<style>.ptitle{font-size:13px;font-weight:bold}.tick{font-size:10px;fill:#555}.axis{font-size:10px;fill:#777}.grid{stroke:#e4e4e4;stroke-width:1}.frame{fill:none;stroke:#999}.empty{font-size:12px;fill:#999}.legend{font-size:12px}</style>\n"
        out += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
        out += "<text x=\"10\" y=\"22\" font-size=\"16\" font-weight=\"bold\">\(escape(title))</text>\n"
        var lx = 10.0
        for (i, r) in runs.enumerated() {
            out +=
                "<g class=\"legend\"><line x1=\"\(fmt(lx))\" x2=\"\(fmt(lx + 18))\" y1=\"40\" y2=\"40\" stroke=\"\(colors[i % colors.count])\" stroke-width=\"3\"/>"
            out += "<text x=\"\(fmt(lx + 24))\" y=\"44\">\(escape(r))</text></g>\n"
            lx += 40 + Double(r.count) * 7
        }
        for (k, p) in panels.enumerated() {
            out += panel(
                metric: p.metric, series: p.series, x: 10 + Double(k % cols) * pw, y: 56 + Double(k / cols) * ph, w: pw - 10, h: ph - 10,
                smooth: smooth)
        }
        return out + "</svg>\n"
    }
}
