/// How text is split into the pieces BPE runs on: GPT-2's pattern (a ByteLevel pre-tokenizer
/// with `use_regex`), or the `Split` pattern of Llama 3 or Qwen2 (before a ByteLevel without it).
/// Each is written out by hand and checked against Hugging Face `tokenizers`.
public enum PreTokenization: String, Equatable, Sendable {
    case gpt2, llama3, qwen2
    /// `Sequence[Digits(individual_digits: true), ByteLevel]` (SmolLM's tokenizer): every digit a
    /// piece of its own, and GPT-2's pattern over the text between digits.
    case gpt2Digits = "gpt2-digits"

    /// The regex a `Split` pre-tokenizer must hold (as tokenizer.json spells it) to be read as
    /// this pattern; nil for GPT-2, whose pattern is implied by ByteLevel.
    public var splitPattern: String? {
        switch self {
        case .gpt2, .gpt2Digits: return nil
        case .llama3: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2: return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }
}

/// GPT-2's pre-tokenisation: splits text into the pieces BPE runs on, exactly as the pattern
///
///     's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
///
/// does under a leftmost-first regex engine. It is written out by hand over Unicode scalars
/// (not Swift `Character`s, which would glue combining marks to their base letter).
enum PreTokenizer {
    /// Character classes the pattern distinguishes.
    enum Kind: UInt8 { case letter, number, space, other }

    /// The class of a scalar; ASCII by arithmetic (a lookup table in a global costs a lazy-
    /// initialisation check on every call in the hottest loop of encoding).
    @inline(__always)
    static func kind(_ v: UInt32) -> Kind {
        guard v < 128 else { return classify(v) }
        if (v | 0x20) &- 97 < 26 { return .letter } // A–Z, a–z
        if v &- 48 < 10 { return .number } // 0–9
        if v == 32 || v &- 9 < 5 { return .space } // space, \t \n \v \f \r
        return .other
    }

    static func classify(_ v: UInt32) -> Kind {
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
                if c == 115 || c == 116 || c == 109 || c == 100 { ends.append(i + 2); i += 2; continue } // s t m d
                if i + 2 < n {
                    let d = s[i + 2]
                    if (c == 114 && d == 101) || (c == 118 && d == 101) || (c == 108 && d == 108) { // re ve ll
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
    static func forEachPiece(
        _ bytes: [UInt8], _ from: Int, _ to: Int, pattern: PreTokenization = .gpt2,
        _ body: (ArraySlice<UInt8>) -> Void
    ) {
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
        let ends: [Int]
        switch pattern {
        case .gpt2: ends = split(scalars)
        case .gpt2Digits: ends = splitDigitsThenGPT2(scalars)
        case .llama3, .qwen2: ends = splitLlama(scalars, maxDigits: pattern == .llama3 ? 3 : 1)
        }
        for end in ends {
            body(bytes[starts[pieceStart]..<starts[end]])
            pieceStart = end
        }
    }

    /// Digits(individual_digits) then GPT-2's pattern: each numeric scalar (\p{N}, as Rust's
    /// `char::is_numeric`) is a piece, and each run between them is split by `split`.
    static func splitDigitsThenGPT2(_ s: [UInt32]) -> [Int] {
        var ends: [Int] = []
        var runStart = 0
        func flushRun(_ end: Int) {
            guard runStart < end else { return }
            for e in split(Array(s[runStart..<end])) { ends.append(runStart + e) }
        }
        for (i, v) in s.enumerated() where kind(v) == .number {
            flushRun(i)
            ends.append(i + 1)
            runStart = i + 1
        }
        flushRun(s.count)
        return ends
    }

    // MARK: Llama 3 and Qwen2

    /// The pattern of Llama 3's and Qwen2's `Split` pre-tokenizer, written out as `split` writes
    /// out GPT-2's:
    ///
    ///     (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    ///
    /// with `\p{N}{1,3}` for Llama 3 (`maxDigits` 3) and `\p{N}` for Qwen2 (`maxDigits` 1).
    /// Returns the end index of each piece in order.
    static func splitLlama(_ s: [UInt32], maxDigits: Int) -> [Int] {
        var ends: [Int] = []
        let n = s.count
        var i = 0
        let cr: UInt32 = 13, lf: UInt32 = 10, space: UInt32 = 32, apostrophe: UInt32 = 39
        // Simple case folding, as the engine behind tokenizers applies (?i:): ASCII, and ſ (U+017F) folds to s.
        @inline(__always) func lower(_ v: UInt32) -> UInt32 { (65...90).contains(v) ? v + 32 : v == 0x17F ? 115 : v }
        while i < n {
            // (?i:'s|'t|'re|'ve|'m|'ll|'d)
            if s[i] == apostrophe, i + 1 < n {
                let c = lower(s[i + 1])
                if c == 115 || c == 116 || c == 109 || c == 100 { ends.append(i + 2); i += 2; continue } // s t m d
                if i + 2 < n {
                    let d = lower(s[i + 2])
                    if (c == 114 && d == 101) || (c == 118 && d == 101) || (c == 108 && d == 108) { // re ve ll
                        ends.append(i + 3); i += 3; continue
                    }
                }
            }
            let k = kind(s[i])
            // [^\r\n\p{L}\p{N}]?\p{L}+
            var letters = -1
            if k == .letter {
                letters = i
            } else if k != .number && s[i] != cr && s[i] != lf && i + 1 < n && kind(s[i + 1]) == .letter {
                letters = i + 1
            }
            if letters >= 0 {
                var e = letters + 1
                while e < n && kind(s[e]) == .letter { e += 1 }
                ends.append(e); i = e; continue
            }
            // \p{N}{1,maxDigits}
            if k == .number {
                var e = i + 1
                while e < n && e - i < maxDigits && kind(s[e]) == .number { e += 1 }
                ends.append(e); i = e; continue
            }
            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            let j = (s[i] == space && i + 1 < n && kind(s[i + 1]) == .other) ? i + 1 : i
            if kind(s[j]) == .other {
                var e = j + 1
                while e < n && kind(s[e]) == .other { e += 1 }
                while e < n && (s[e] == cr || s[e] == lf) { e += 1 }
                ends.append(e); i = e; continue
            }
            // Whitespace from i to w.
            var w = i
            while w < n && kind(s[w]) == .space { w += 1 }
            // \s*[\r\n]+: through the last line break of the run.
            var lastBreak = -1
            for p in i..<w where s[p] == cr || s[p] == lf { lastBreak = p }
            if lastBreak >= 0 { ends.append(lastBreak + 1); i = lastBreak + 1; continue }
            // \s+(?!\S), else \s+: the run, less its last character when text follows.
            let e = (w < n && w - i > 1) ? w - 1 : w
            ends.append(e); i = e
        }
        return ends
    }
}
