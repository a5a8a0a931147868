/// Makes untrusted text (anything a model generated) safe to print to a terminal.
///
/// Control characters and escape sequences are never passed through: ESC (and so every CSI and
/// OSC sequence), BEL, CR, backspace, DEL, the C1 controls and the bidirectional overrides that
/// can reorder what a reader sees are shown as visible escapes such as `\e`, `\r`, `\x07` or
/// `\u{202E}`; bytes that are not valid UTF-8 are shown as `\xNN`. Backslashes are doubled so an
/// escape in the output is never ambiguous with text.
public enum TerminalSafe {
    /// Escapes `bytes`; newlines (and tabs, when `keepTabs`) are kept when `keepNewlines`.
    public static func escape(bytes: [UInt8], keepNewlines: Bool = true, keepTabs: Bool = true) -> String {
        var out = ""
        out.reserveCapacity(bytes.count)
        var i = 0
        while i < bytes.count {
            let b0 = bytes[i]
            if b0 < 0x80 {
                out += escapeASCII(b0, keepNewlines: keepNewlines, keepTabs: keepTabs)
                i += 1
                continue
            }
            // Decode one UTF-8 scalar strictly; anything malformed is shown byte by byte.
            var len = 0, v: UInt32 = 0, minValue: UInt32 = 0
            if b0 & 0xE0 == 0xC0 {
                len = 2; v = UInt32(b0 & 0x1F); minValue = 0x80
            } else if b0 & 0xF0 == 0xE0 {
                len = 3; v = UInt32(b0 & 0x0F); minValue = 0x800
            } else if b0 & 0xF8 == 0xF0 {
                len = 4; v = UInt32(b0 & 0x07); minValue = 0x10000
            }
            var ok = len > 0 && i + len <= bytes.count
            if ok {
                for k in 1..<len {
                    let c = bytes[i + k]
                    if c & 0xC0 != 0x80 { ok = false; break }
                    v = v << 6 | UInt32(c & 0x3F)
                }
            }
            if ok, v >= minValue, v <= 0x10FFFF, !(0xD800...0xDFFF).contains(v), let u = Unicode.Scalar(v) {
                if isDangerous(v) { out += "\\u{\(String(v, radix: 16, uppercase: true))}" } else { out.unicodeScalars.append(u) }
                i += len
            } else {
                out += hex(b0)
                i += 1
            }
        }
        return out
    }

    /// Escapes a string (already valid Unicode).
    public static func escape(_ s: String, keepNewlines: Bool = true, keepTabs: Bool = true) -> String {
        escape(bytes: Array(s.utf8), keepNewlines: keepNewlines, keepTabs: keepTabs)
    }

    private static func escapeASCII(_ b: UInt8, keepNewlines: Bool, keepTabs: Bool) -> String {
        switch b {
        case 0x0A: return keepNewlines ? "\n" : "\\n"
        case 0x09: return keepTabs ? "\t" : "\\t"
        case 0x0D: return "\\r"
        case 0x1B: return "\\e"
        case 0x5C: return "\\\\"
        case 0..<0x20, 0x7F: return hex(b)
        default: return String(UnicodeScalar(b))
        }
    }

    /// C1 controls, bidirectional embeddings/overrides/isolates, line and paragraph separators.
    private static func isDangerous(_ v: UInt32) -> Bool {
        (0x80...0x9F).contains(v) || (0x202A...0x202E).contains(v) || (0x2066...0x2069).contains(v)
            || v == 0x2028 || v == 0x2029 || v == 0x200E || v == 0x200F || v == 0x061C
    }

    private static func hex(_ b: UInt8) -> String {
        let digits = Array("0123456789abcdef")
        return "\\x" + String(digits[Int(b >> 4)]) + String(digits[Int(b & 15)])
    }
}
