import Foundation

// Lexing the template into text and tags.

enum Segment {
    case text(String)
    case output(String, line: Int)
    case statement(String, line: Int)
}

enum Lexer {
    /// Splits a template into text, `{{ }}` and `{% %}`, applying comments, whitespace control,
    /// `trim_blocks` and `lstrip_blocks`.
    static func segments(_ source: String) throws -> [Segment] {
        // As Jinja reads a template: \r\n and \r become \n, and one final newline is dropped
        // (keep_trailing_newline is off in transformers).
        var s: [Unicode.Scalar] = []
        s.reserveCapacity(source.unicodeScalars.count)
        var afterCR = false
        for c in source.unicodeScalars {
            if c == "\r" { s.append("\n"); afterCR = true; continue }
            if c == "\n" && afterCR { afterCR = false; continue }
            afterCR = false
            s.append(c)
        }
        if s.last == "\n" { s.removeLast() }
        var out: [Segment] = []
        var text = String.UnicodeScalarView()
        var i = 0, line = 1
        var stripNext = false // a `-` before the tag's end: strip whitespace that follows
        var trimNewline = false // trim_blocks: drop one newline after a block or comment tag
        var bufferStart = 0 // source index of the first scalar in `text`
        func flushText() { if !text.isEmpty { out.append(.text(String(text))); text = String.UnicodeScalarView() } }
        while i < s.count {
            let c = s[i]
            if c == "{", i + 1 < s.count, s[i + 1] == "{" || s[i + 1] == "%" || s[i + 1] == "#" {
                let kind = s[i + 1]
                let tagLine = line
                // A `-` at the end of the previous tag strips only the text between the two tags.
                stripNext = false
                var j = i + 2
                var leftStrip = false, noLstrip = false
                if j < s.count && s[j] == "-" { leftStrip = true; j += 1 } else if j < s.count && s[j] == "+" { noLstrip = true; j += 1 }
                // Whitespace before the tag.
                if leftStrip {
                    while let last = text.last, last.properties.isWhitespace { text.removeLast() }
                } else if kind != "{" && !noLstrip {
                    // lstrip_blocks: spaces and tabs from the start of the line up to a block or comment tag
                    // (in the source: a newline trim_blocks removed still starts a line)
                    var k = text.endIndex, onlyBlank = true
                    while k > text.startIndex {
                        let p = text.index(before: k)
                        if text[p] == "\n" { break }
                        if text[p] != " " && text[p] != "\t" { onlyBlank = false; break }
                        k = p
                    }
                    let atLineStart = k != text.startIndex || bufferStart == 0 || s[bufferStart - 1] == "\n"
                    if onlyBlank && atLineStart && !text.isEmpty { text.removeSubrange(k..<text.endIndex) }
                }
                // Find the end of the tag, skipping quoted strings.
                let close: Unicode.Scalar = kind == "{" ? "}" : kind == "%" ? "%" : "#"
                var body = String.UnicodeScalarView()
                var quote: Unicode.Scalar?
                var found = false
                while j < s.count {
                    let d = s[j]
                    if d == "\n" { line += 1 }
                    if kind != "#", let q = quote {
                        body.append(d)
                        if d == "\\" && j + 1 < s.count { body.append(s[j + 1]); j += 2; continue }
                        if d == q { quote = nil }
                        j += 1; continue
                    }
                    if kind != "#" && (d == "'" || d == "\"") { quote = d; body.append(d); j += 1; continue }
                    if d == "-" && j + 2 < s.count && s[j + 1] == close && s[j + 2] == "}" {
                        stripNext = true; j += 3; found = true; break
                    }
                    if d == close && j + 1 < s.count && s[j + 1] == "}" { j += 2; found = true; break }
                    body.append(d); j += 1
                }
                guard found else {
                    throw TemplateError("line \(tagLine): \(kind == "{" ? "{{" : kind == "%" ? "{%" : "{#") is never closed")
                }
                flushText()
                let inner = String(body).trimmingCharacters(in: .whitespacesAndNewlines)
                switch kind {
                case "{": out.append(.output(inner, line: tagLine))
                case "%": out.append(.statement(inner, line: tagLine))
                default: break
                }
                trimNewline = kind != "{"
                i = j
                continue
            }
            if stripNext {
                if c.properties.isWhitespace { if c == "\n" { line += 1 }; i += 1; continue }
                stripNext = false
            }
            if trimNewline {
                trimNewline = false
                if c == "\n" { line += 1; i += 1; continue }
            }
            if c == "\n" { line += 1 }
            if text.isEmpty { bufferStart = i }
            text.append(c)
            i += 1
        }
        flushText()
        return out
    }
}
