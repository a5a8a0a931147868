/// GPT-2's pre-tokenisation: splits text into the pieces BPE runs on, exactly as the pattern
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// does under a leftmost-first regex engine. It is written out by hand over Unicode scalars
/// (not Swift `Character`s, which would glue combining marks to their base letter).
enum PreTokenizer {
    /// Character classes the pattern distinguishes.
    enum Kind: UInt8 { case letter, number, space, other }

    private static let asciiKinds: [Kind] = (0..<128).map { classify(UInt32($0)) }

    @inline(__always)
    static func kind(_ v: UInt32) -> Kind { v < 128 ? asciiKinds[Int(v)] : classify(v) }

    private static func classify(_ v: UInt32) -> Kind {
        guard let u = Unicode.Scalar(v) else { return .other }
        let p = u.properties
        if p.isWhitespace { return .space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
        case .decimalNumber, .letterNumber, .otherNumber: return .number
        default: return .other
        }
    }

    /// Splits `scalars` into pieces; returns the end index of each piece in order.
    static func split(_ s: [UInt32]) -> [Int] {
        var ends: [Int] = []
        let n = s.count
        var i = 0
        let apostrophe: UInt32 = 39, space: UInt32 = 32
        while i < n {
            let start = i
            // 's 't 're 've 'm 'll 'd
            if s[i] == apostrophe, i + 1 < n {
                let c = s[i + 1]
                if c == 115 || c == 116 || c == 109 || c == 100 { ends.append(i + 2); i += 2; continue }   // s t m d
                if i + 2 < n {
                    let d = s[i + 2]
                    if (c == 114 && d == 101) || (c == 118 && d == 101) || (c == 108 && d == 108) {     // re ve ll
                        ends.append(i + 3); i += 3; continue
                    }
                }
            }
            // An optional single space before a letter, number or other run.
            let j = (s[i] == space && i + 1 < n) ? i + 1 : i
            let k = kind(s[j])
            if k != .space && (j == i || s[i] == space) {
                var e = j + 1
                while e < n && kind(s[e]) == k { e += 1 }
                ends.append(e); i = e; continue
            }
            // Whitespace: the run, minus its last character when non-space text follows it.
            var e = start
            while e < n && kind(s[e]) == .space { e += 1 }
            if e < n && e - start > 1 { e -= 1 }
            ends.append(e); i = e
        }
        return ends
    }

    /// Calls `body(from, to, special)` for each stretch of `bytes` between special tokens, and
    /// for each special token (`special` is its index in `specials`, which are tried in order,
    /// longest first).
    static func forEachSegment(_ bytes: [UInt8], specials: [[UInt8]], _ body: (Int, Int, Int?) -> Void) {
        var start = 0, i = 0
        if !specials.isEmpty {
            outer: while i < bytes.count {
                let first = bytes[i]
                for (si, sb) in specials.enumerated() where sb[0] == first && i + sb.count <= bytes.count {
                    var ok = true
                    for k in 1..<sb.count where bytes[i + k] != sb[k] { ok = false; break }
                    if ok {
                        if start < i { body(start, i, nil) }
                        body(i, i + sb.count, si)
                        i += sb.count; start = i
                        continue outer
                    }
                }
                i += 1
            }
        }
        if start < bytes.count { body(start, bytes.count, nil) }
    }

    /// Calls `body` with the bytes of each pre-tokenised piece of bytes[from..<to], which must
    /// hold whole UTF-8 scalars.
    static func forEachPiece(_ bytes: [UInt8], _ from: Int, _ to: Int, _ body: (ArraySlice<UInt8>) -> Void) {
        guard from < to else { return }
        var scalars: [UInt32] = []
        var starts: [Int] = []
        scalars.reserveCapacity(to - from); starts.reserveCapacity(to - from + 1)
        var i = from
        while i < to {
            let b0 = UInt32(bytes[i])
            var len = 1, v = b0
            if b0 >= 0xF0 { len = 4; v = b0 & 0x07 } else if b0 >= 0xE0 { len = 3; v = b0 & 0x0F } else if b0 >= 0xC0 { len = 2; v = b0 & 0x1F }
            if len > 1 { for k in 1..<len { v = v << 6 | (UInt32(bytes[i + k]) & 0x3F) } }
            scalars.append(v); starts.append(i)
            i += len
        }
        starts.append(to)
        var pieceStart = 0
        for end in split(scalars) {
            body(bytes[starts[pieceStart]..<starts[end]])
            pieceStart = end
        }
    }
}
