/// Terminal column widths and line wrapping for escaped, printable text.
public enum TextLayout {
    /// Columns a scalar takes: 0 for combining marks and format characters, 2 for East Asian
    /// wide characters and emoji, 1 otherwise.
    public static func width(_ u: Unicode.Scalar) -> Int {
        let v = u.value
        if v < 0x300 { return 1 }
        switch u.properties.generalCategory {
        case .nonspacingMark, .enclosingMark, .format: return 0
        default: break
        }
        if (0xFE00...0xFE0F).contains(v) { return 0 } // variation selectors
        let wide: [ClosedRange<UInt32>] = [
            0x1100...0x115F, 0x231A...0x231B, 0x2329...0x232A, 0x23E9...0x23EC, 0x25FD...0x25FE,
            0x2614...0x2615, 0x2648...0x2653, 0x26AA...0x26AB, 0x26BD...0x26BE, 0x26C4...0x26C5,
            0x2E80...0x303E, 0x3041...0x33FF, 0x3400...0x4DBF, 0x4E00...0x9FFF, 0xA000...0xA4CF,
            0xAC00...0xD7A3, 0xF900...0xFAFF, 0xFE30...0xFE4F, 0xFF00...0xFF60, 0xFFE0...0xFFE6,
            0x1F300...0x1F64F, 0x1F680...0x1F6FF, 0x1F900...0x1F9FF, 0x1FA70...0x1FAFF, 0x20000...0x3FFFD,
        ]
        return wide.contains { $0.contains(v) } ? 2 : 1
    }

    /// Columns of one character (grapheme cluster): its widest scalar.
    public static func width(_ c: Character) -> Int { c.unicodeScalars.map(width).max() ?? 0 }

    /// Columns of a string without escape sequences.
    public static func width(_ s: String) -> Int { s.reduce(0) { $0 + width($1) } }

    /// Cuts `s` to at most `columns`, ending with "…" when cut.
    public static func truncate(_ s: String, _ columns: Int) -> String {
        guard columns > 0 else { return "" }
        if width(s) <= columns { return s }
        var out = "", w = 0
        for c in s {
            let cw = width(c)
            if w + cw > columns - 1 { break }
            out.append(c); w += cw
        }
        return out + "…"
    }

    /// Pads `s` with spaces to exactly `columns` (cutting it when longer).
    public static func pad(_ s: String, _ columns: Int) -> String {
        let t = truncate(s, columns)
        return t + String(repeating: " ", count: max(0, columns - width(t)))
    }

    /// Wraps printable text (newlines allowed) to `columns`, breaking at spaces where it can.
    public static func wrap(_ text: String, _ columns: Int) -> [String] {
        let cols = max(1, columns)
        var lines: [String] = []
        for paragraph in text.split(separator: "\n", omittingEmptySubsequences: false) {
            var line = "", w = 0
            var lastSpace: String.Index? = nil
            for c in paragraph.replacingOccurrences(of: "\t", with: "    ") {
                let cw = width(c)
                if w + cw > cols {
                    if c == " " {
                        lines.append(line)
                        line = ""; w = 0; lastSpace = nil
                        continue
                    }
                    if let sp = lastSpace, sp > line.startIndex {
                        let head = String(line[..<sp]), tail = String(line[line.index(after: sp)...])
                        lines.append(head)
                        line = tail; w = width(tail)
                    } else {
                        lines.append(line)
                        line = ""; w = 0
                    }
                    lastSpace = nil
                }
                if c == " " { lastSpace = line.endIndex }
                line.append(c); w += cw
            }
            lines.append(line)
        }
        return lines
    }

    /// Cuts a screen line to `columns` display columns, passing the escape sequences of the
    /// screen's own styling through without counting them (and resetting the style when cut).
    /// The line's text must already be escaped (`TerminalSafe`).
    public static func fit(_ line: String, _ columns: Int) -> String {
        var out = "", w = 0
        var it = line.makeIterator()
        var cut = false
        while let c = it.next() {
            if c == "\u{1B}" {
                out.append(c)
                while let d = it.next() { out.append(d); if d.isLetter { break } }
                continue
            }
            let cw = width(c)
            if w + cw > columns { cut = true; break }
            out.append(c); w += cw
        }
        return cut ? out + "\u{1B}[0m" : out
    }
}
