import Foundation

/// One turn of a conversation.
public struct ChatMessage: Equatable, Sendable {
    public var role: String
    public var content: String
    public init(role: String, content: String) { self.role = role; self.content = content }
}

/// A model's chat template: the subset of Jinja that Hugging Face chat templates use, rendered
/// as transformers renders them (`trim_blocks` and `lstrip_blocks` on).
///
/// Supported: text, `{{ … }}`, `{# … #}`, `{% if/elif/else/endif %}`, `{% for x in … %}` (with
/// `loop.index`, `index0`, `first`, `last`, `length`, `revindex`, two-name unpacking and an
/// `else` branch), `{% break %}`, `{% continue %}`, `{% generation %}` (transformers' marker of
/// assistant text), `{% set name = … %}` and `{% set ns.attr = … %}`, whitespace control (`-`),
/// string, integer, list and dict literals, `+ - * / // % ~`, comparisons, `in`, `and/or/not`,
/// `x if c else y`, subscripts and slices (with a step: `messages[::-1]`), attribute access, the tests `defined`, `undefined`,
/// `none`, `string`, `number`, `integer`, `boolean`, `mapping`, `sequence`, `iterable`, `true`,
/// `false`, `float`, `lower`, `upper`, `odd`, `even`, `divisibleby`, `equalto`/`eq`/`==`, `ne`/`!=`,
/// `lt`/`<`, `le`/`<=`, `gt`/`>`, `ge`/`>=` and `in` (with an argument in parentheses or after a
/// space), the filters `trim`, `length`, `count`, `lower`, `upper`, `capitalize`, `title`,
/// `string`, `first`, `last`, `join`, `default`, `replace`, `list`, `tojson`, `items`, `select`,
/// `reject`, `selectattr`, `rejectattr`, `map`, `int`, `float`, `abs`, `reverse`, string methods
/// (`strip`, `startswith`, `split`, …), dict `items/keys/values/get`, and the globals
/// `strftime_now`, `raise_exception`, `namespace`, `range` and `dict`. Anything else is refused
/// when the template is read, with its line and construct.
public final class ChatTemplate: @unchecked Sendable {
    /// The template text.
    public let source: String
    private let nodes: [Node]

    /// Parses a template; `name` appears in errors (a file name, say).
    public init(_ source: String, name: String = "chat template") throws {
        self.source = source
        do {
            var parser = Parser(segments: try Lexer.segments(source))
            nodes = try parser.parseAll()
        } catch let e as TemplateError {
            throw FormatError("\(name): \(e.description)")
        }
    }

    /// `source` parsed once: stages template every prompt of a run with the same source.
    public static func parsed(_ source: String) throws -> ChatTemplate {
        cacheLock.lock()
        defer { cacheLock.unlock() }
        if let t = cache[source] { return t }
        let t = try ChatTemplate(source)
        if cache.count >= 8 { cache.removeAll() }
        cache[source] = t
        return t
    }
    private static let cacheLock = NSLock()
    nonisolated(unsafe) private static var cache: [String: ChatTemplate] = [:]

    /// The folder's chat template: `chat_template.jinja` (as transformers 5 saves it), else
    /// `chat_template` in `tokenizer_config.json` (a string, or a list of named templates, of
    /// which `default` is used). Nil when the folder has none.
    public static func load(folder: URL) throws -> ChatTemplate? {
        let file = folder.appendingPathComponent("chat_template.jinja")
        if FileManager.default.fileExists(atPath: file.path) {
            let data = try JSONText.readFile(file, limit: 4 << 20)
            guard let text = String(data: data, encoding: .utf8) else { throw FormatError("\(file.path): not UTF-8 text") }
            return try ChatTemplate(text, name: file.path)
        }
        let cfg = folder.appendingPathComponent("tokenizer_config.json")
        guard FileManager.default.fileExists(atPath: cfg.path) else { return nil }
        let obj = try JSONText.object(JSONText.readFile(cfg, limit: 64 << 20), cfg.path)
        switch obj["chat_template"] {
        case let s as String: return try ChatTemplate(s, name: "\(cfg.path) chat_template")
        case let list as [Any]:
            for case let d as [String: Any] in list where d["name"] as? String == "default" {
                if let s = d["template"] as? String { return try ChatTemplate(s, name: "\(cfg.path) chat_template (default)") }
            }
            throw FormatError("\(cfg.path): chat_template is a list without a template named \"default\"")
        case nil, is NSNull: return nil
        default: throw FormatError("\(cfg.path): chat_template must be a string or a list of named templates")
        }
    }

    /// Renders a conversation as transformers' `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt:, **variables)` does. `specialTokens` are the tokenizer's named
    /// tokens (`bos_token`, `eos_token`, …); `now` is what `strftime_now` formats.
    public func render(messages: [ChatMessage], addGenerationPrompt: Bool, specialTokens: [String: String] = [:],
                       variables: [String: String] = [:], now: Date = Date()) throws -> String {
        var globals: [String: Value] = [
            "messages": .list(messages.map { .dict(["role": .string($0.role), "content": .string($0.content)], ["role", "content"]) }),
            "add_generation_prompt": .bool(addGenerationPrompt),
            "tools": .none, "documents": .none,
            "strftime_now": .function("strftime_now"), "raise_exception": .function("raise_exception"),
            "namespace": .function("namespace"), "range": .function("range"), "dict": .function("dict"),
        ]
        for (k, v) in specialTokens { globals[k] = .string(v) }
        for (k, v) in variables { globals[k] = .string(v) }
        var ctx = Context(scopes: [globals], now: now)
        var out = ""
        do {
            _ = try ctx.run(nodes, &out)
        } catch let e as TemplateError {
            throw FormatError("chat template: \(e.description)")
        }
        return out
    }
}

// MARK: - Values

/// A Jinja value.
private indirect enum Value {
    case undefined(String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([Value])
    /// Keys in insertion order beside the map.
    case dict([String: Value], [String])
    case namespace(Namespace)
    case function(String)
    case method(Value, String)

    var truthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d, _): return !d.isEmpty
        case .namespace, .function, .method: return true
        }
    }

    var isUndefined: Bool { if case .undefined = self { return true } else { return false } }

    /// How `{{ }}` and `~` and `string` print a value (Python's str()).
    func text(depth: Int = 0) throws -> String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return d == d.rounded() && abs(d) < 1e16 ? String(format: "%.1f", d) : String(d)
        case .string(let s): return s
        case .list(let l): return try Value.joined("[", l.map { v in { try v.repr(depth: depth + 1) } }, ", ", "]", depth: depth)
        case .dict(let d, let keys): return try Value.joined("{", keys.map { k in { "'\(k)': " + (try d[k]!.repr(depth: depth + 1)) } }, ", ", "}", depth: depth)
        case .namespace: return "<Namespace>"
        case .function(let f), .method(_, let f): return "<function \(f)>"
        }
    }

    /// Python's repr(), for values inside printed lists.
    func repr(depth: Int = 0) throws -> String {
        if case .string(let s) = self {
            return "'" + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
                .replacingOccurrences(of: "\n", with: "\\n") + "'"
        }
        return try text(depth: depth)
    }

    /// `open`, the parts separated by `separator`, `close`: refused when the value nests more
    /// than `Limits.nesting` deep or the text grows past `Limits.textBytes`.
    static func joined(_ open: String, _ parts: [() throws -> String], _ separator: String, _ close: String, depth: Int) throws -> String {
        guard depth < Limits.nesting else { throw TemplateError("a value nested more than \(Limits.nesting) levels deep cannot be printed") }
        var out = open
        for (i, part) in parts.enumerated() {
            if i > 0 { out += separator }
            out += try part()
            guard out.utf8.count <= Limits.textBytes else { throw TemplateError("a text grows past \(Limits.textBytes >> 20) MB") }
        }
        return out + close
    }

    /// JSON text (the `tojson` filter: keys in order, non-ASCII kept, `indent` as Python's json).
    func json(indent: Int?, level: Int = 0) throws -> String {
        func pad(_ l: Int) -> String { indent.map { "\n" + String(repeating: " ", count: max(0, $0) * l) } ?? "" }
        let sep = indent == nil ? ", " : ","
        if let indent, indent > 256 { throw TemplateError("tojson: an indent of \(indent) is more than 256") }
        switch self {
        case .undefined, .none: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .int, .double: return try text()
        case .string(let s): return JSONText.quote(s)
        case .list(let l):
            if l.isEmpty { return "[]" }
            return try Value.joined("[", l.map { v in { pad(level + 1) + (try v.json(indent: indent, level: level + 1)) } }, sep, pad(level) + "]", depth: level)
        case .dict(let d, let keys):
            if keys.isEmpty { return "{}" }
            return try Value.joined("{", keys.map { k in { pad(level + 1) + JSONText.quote(k) + ": " + (try d[k]!.json(indent: indent, level: level + 1)) } },
                                    sep, pad(level) + "}", depth: level)
        case .namespace(let n): return try Value.dict(n.fields, n.order).json(indent: indent, level: level)
        case .function, .method: throw TemplateError("tojson: a function cannot be serialised")
        }
    }

    var typeName: String {
        switch self {
        case .undefined: return "undefined"
        case .none: return "none"
        case .bool: return "boolean"
        case .int, .double: return "number"
        case .string: return "string"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "namespace"
        case .function, .method: return "function"
        }
    }
}

private final class Namespace {
    var fields: [String: Value] = [:]
    var order: [String] = []
    func set(_ k: String, _ v: Value) { if fields[k] == nil { order.append(k) }; fields[k] = v }
}

private struct TemplateError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

// MARK: - Lexing the template into text and tags

private enum Segment {
    case text(String)
    case output(String, line: Int)
    case statement(String, line: Int)
}

private enum Lexer {
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
        var stripNext = false          // a `-` before the tag's end: strip whitespace that follows
        var trimNewline = false        // trim_blocks: drop one newline after a block or comment tag
        var bufferStart = 0            // source index of the first scalar in `text`
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

// MARK: - Expressions

private indirect enum Expr {
    case literal(Value)
    case name(String)
    case list([Expr])
    case dict([(String, Expr)])
    case attr(Expr, String)
    case index(Expr, Expr)
    case slice(Expr, Expr?, Expr?, Expr?)
    case call(Expr, [Expr], [(String, Expr)])
    case filter(Expr, String, [Expr], [(String, Expr)])
    case test(Expr, String, Bool, [Expr])
    case unary(String, Expr)
    case binary(String, Expr, Expr)
    case ternary(Expr, Expr, Expr?)
}

private enum Token: Equatable {
    case name(String), string(String), int(Int), double(Double), op(String), end
}

private struct ExprLexer {
    static func tokens(_ src: String, line: Int) throws -> [Token] {
        let s = Array(src.unicodeScalars)
        var out: [Token] = []
        var i = 0
        while i < s.count {
            let c = s[i]
            if c.properties.isWhitespace { i += 1; continue }
            if c == "_" || c.properties.isAlphabetic {
                var j = i
                while j < s.count && (s[j] == "_" || s[j].properties.isAlphabetic || ("0"..."9").contains(s[j])) { j += 1 }
                out.append(.name(String(String.UnicodeScalarView(s[i..<j])))); i = j; continue
            }
            if ("0"..."9").contains(c) {
                var j = i
                while j < s.count && ("0"..."9").contains(s[j]) { j += 1 }
                if j + 1 < s.count && s[j] == "." && ("0"..."9").contains(s[j + 1]) {
                    j += 1
                    while j < s.count && ("0"..."9").contains(s[j]) { j += 1 }
                    out.append(.double(Double(String(String.UnicodeScalarView(s[i..<j])))!))
                } else {
                    guard let v = Int(String(String.UnicodeScalarView(s[i..<j]))) else { throw TemplateError("line \(line): number too large") }
                    out.append(.int(v))
                }
                i = j; continue
            }
            if c == "'" || c == "\"" {
                var j = i + 1
                var str = String.UnicodeScalarView()
                var closed = false
                while j < s.count {
                    let d = s[j]
                    if d == c { closed = true; j += 1; break }
                    if d == "\\" && j + 1 < s.count {
                        let e = s[j + 1]
                        switch e {
                        case "n": str.append("\n")
                        case "t": str.append("\t")
                        case "r": str.append("\r")
                        case "\\", "'", "\"": str.append(e)
                        case "x", "u", "U":
                            // Python's \xNN, \uNNNN and \UNNNNNNNN, as Jinja reads string literals.
                            let width = e == "x" ? 2 : e == "u" ? 4 : 8
                            let digits = j + 2 + width <= s.count ? String(String.UnicodeScalarView(s[(j + 2)..<(j + 2 + width)])) : ""
                            guard digits.count == width, let v = UInt32(digits, radix: 16), let scalar = Unicode.Scalar(v) else {
                                throw TemplateError("line \(line): malformed \\\(e) escape in a string")
                            }
                            str.append(scalar)
                            j += 2 + width; continue
                        default: str.append("\\"); str.append(e)
                        }
                        j += 2; continue
                    }
                    str.append(d); j += 1
                }
                guard closed else { throw TemplateError("line \(line): unterminated string") }
                out.append(.string(String(str))); i = j; continue
            }
            let two = i + 1 < s.count ? String(String.UnicodeScalarView([c, s[i + 1]])) : ""
            if ["==", "!=", "<=", ">=", "//", "**"].contains(two) { out.append(.op(two)); i += 2; continue }
            if "()[]{}.,:|~+-*/%<>=".unicodeScalars.contains(c) { out.append(.op(String(c))); i += 1; continue }
            throw TemplateError("line \(line): unexpected character \(String(c)) in an expression")
        }
        out.append(.end)
        return out
    }
}

private let knownFilters: Set<String> = ["trim", "length", "count", "lower", "upper", "capitalize", "title", "string",
                                         "first", "last", "join", "default", "d", "replace", "list", "tojson", "items",
                                         "select", "reject", "selectattr", "rejectattr", "map", "int", "float", "abs", "reverse"]
private let knownTests: Set<String> = ["defined", "undefined", "none", "string", "number", "integer", "float", "boolean",
                                       "mapping", "sequence", "iterable", "true", "false", "lower", "upper", "odd", "even",
                                       "divisibleby", "equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">",
                                       "ge", ">=", "in"]

/// Limits that keep a hostile template from exhausting the stack, the memory or the time of the
/// process that reads it: nesting of expressions and of blocks, the text any value or the
/// output may grow to, and the steps a rendering may take.
private enum Limits {
    static let nesting = 64
    /// The depth of an expression's tree: a parenthesis, list, call argument, `not` or `-`
    /// counts 4 (each costs several parser frames), each further operand of a chain such as
    /// `a + b + c`, `x.y.z` or `x | f | g` counts 1.
    static let expression = 256
    static let textBytes = 16 << 20
    /// Steps of rendering: a tag or loop iteration counts 1, and so does each item of a list
    /// (and each 256 bytes of a text) that an operator, filter or call makes.
    static let steps = 2_000_000
}

private struct ExprParser {
    var toks: [Token]
    var pos = 0
    let line: Int
    var depth = 0

    /// Counts one level of nesting (see `Limits.expression`); the caller takes it back off.
    mutating func nest() throws {
        depth += 4
        guard depth <= Limits.expression else { throw fail("an expression nested more than \(Limits.nesting) levels deep") }
    }

    /// Counts one more operand of a chain; the caller takes `wraps` back off `depth` at its end.
    mutating func chain(_ wraps: inout Int) throws {
        wraps += 1
        depth += 1
        guard depth <= Limits.expression else { throw fail("an expression nested more than \(Limits.nesting) levels deep (a chain of operators, filters or attributes too long)") }
    }

    init(_ src: String, line: Int) throws { toks = try ExprLexer.tokens(src, line: line); self.line = line }

    var peek: Token { toks[pos] }
    mutating func next() -> Token { let t = toks[pos]; if pos < toks.count - 1 { pos += 1 }; return t }
    func fail(_ what: String) -> TemplateError { TemplateError("line \(line): \(what)") }
    mutating func accept(_ op: String) -> Bool { if peek == .op(op) { pos += 1; return true }; return false }
    mutating func acceptName(_ n: String) -> Bool { if peek == .name(n) { pos += 1; return true }; return false }
    mutating func expect(_ op: String) throws { guard accept(op) else { throw fail("expected \(op)") } }
    mutating func identifier() throws -> String {
        guard case .name(let n) = next() else { throw fail("expected a name") }
        return n
    }
    mutating func atEnd() -> Bool { peek == .end }

    mutating func expression() throws -> Expr {
        try nest()
        defer { depth -= 4 }
        let value = try orExpr()
        if acceptName("if") {
            let cond = try orExpr()
            let other = acceptName("else") ? try expression() : nil
            return .ternary(cond, value, other)
        }
        return value
    }
    mutating func orExpr() throws -> Expr {
        var l = try andExpr()
        var wraps = 0
        defer { depth -= wraps }
        while acceptName("or") { try chain(&wraps); l = .binary("or", l, try andExpr()) }
        return l
    }
    mutating func andExpr() throws -> Expr {
        var l = try notExpr()
        var wraps = 0
        defer { depth -= wraps }
        while acceptName("and") { try chain(&wraps); l = .binary("and", l, try notExpr()) }
        return l
    }
    mutating func notExpr() throws -> Expr {
        if acceptName("not") {
            try nest()
            defer { depth -= 4 }
            return .unary("not", try notExpr())
        }
        return try compare()
    }
    mutating func compare() throws -> Expr {
        var l = try concat()
        var wraps = 0
        defer { depth -= wraps }
        while true {
            if case .op(let o) = peek, ["==", "!=", "<", ">", "<=", ">="].contains(o) { pos += 1; try chain(&wraps); l = .binary(o, l, try concat()); continue }
            if acceptName("in") { try chain(&wraps); l = .binary("in", l, try concat()); continue }
            if peek == .name("not"), toks.count > pos + 1, toks[pos + 1] == .name("in") {
                pos += 2; try chain(&wraps); l = .unary("not", .binary("in", l, try concat())); continue
            }
            return l
        }
    }
    mutating func concat() throws -> Expr {
        var l = try additive()
        var wraps = 0
        defer { depth -= wraps }
        while accept("~") { try chain(&wraps); l = .binary("~", l, try additive()) }
        return l
    }
    mutating func additive() throws -> Expr {
        var l = try multiplicative()
        var wraps = 0
        defer { depth -= wraps }
        while true {
            if accept("+") { try chain(&wraps); l = .binary("+", l, try multiplicative()) } else if accept("-") { try chain(&wraps); l = .binary("-", l, try multiplicative()) } else { return l }
        }
    }
    mutating func multiplicative() throws -> Expr {
        var l = try unary()
        var wraps = 0
        defer { depth -= wraps }
        while true {
            if case .op(let o) = peek, ["*", "/", "//", "%"].contains(o) { pos += 1; try chain(&wraps); l = .binary(o, l, try unary()) } else { return l }
        }
    }
    /// A negation binds tighter than the filters after it, as in Jinja: `-3 | abs` is 3.
    mutating func unary(filters: Bool = true) throws -> Expr {
        if accept("-") {
            try nest()
            defer { depth -= 4 }
            let negation = Expr.unary("-", try unary(filters: false))
            return filters ? try postfix(negation) : negation
        }
        return try postfix(try primary(), filters: filters)
    }
    mutating func arguments() throws -> ([Expr], [(String, Expr)]) {
        var args: [Expr] = [], kwargs: [(String, Expr)] = []
        if accept(")") { return (args, kwargs) }
        repeat {
            if case .name(let n) = peek, toks.count > pos + 1, toks[pos + 1] == .op("=") {
                pos += 2; kwargs.append((n, try expression()))
            } else {
                args.append(try expression())
            }
        } while accept(",")
        try expect(")")
        return (args, kwargs)
    }
    /// Attribute access, subscripts and calls after `base`, then (when `filters`) filters and
    /// tests; a test's unparenthesised argument takes no filters or tests, as in Jinja.
    mutating func postfix(_ base: Expr, filters: Bool = true) throws -> Expr {
        var e = base
        var wraps = 0
        defer { depth -= wraps }
        while true {
            if [.op("."), .op("["), .op("("), .op("|"), .name("is")].contains(peek) { try chain(&wraps) }
            if accept(".") {
                e = .attr(e, try identifier())
            } else if accept("[") {
                var lo: Expr?, hi: Expr?, step: Expr?
                if !accept(":") {
                    lo = try expression()
                    if accept("]") { e = .index(e, lo!); continue }
                    try expect(":")
                }
                if peek != .op("]") && peek != .op(":") { hi = try expression() }
                if accept(":") && peek != .op("]") { step = try expression() }
                try expect("]")
                e = .slice(e, lo, hi, step)
            } else if accept("(") {
                let (a, k) = try arguments()
                e = .call(e, a, k)
            } else if !filters {
                return e
            } else if accept("|") {
                let name = try identifier()
                guard knownFilters.contains(name) else { throw fail("filter \(name) is not supported by this chat-template interpreter") }
                var a: [Expr] = [], k: [(String, Expr)] = []
                if accept("(") { (a, k) = try arguments() }
                e = .filter(e, name, a, k)
            } else if peek == .name("is") {
                pos += 1
                let negated = acceptName("not")
                let name = try identifier()
                guard knownTests.contains(name) else { throw fail("test \(name) is not supported by this chat-template interpreter") }
                var a: [Expr] = []
                if accept("(") {
                    let (args, kwargs) = try arguments()
                    guard kwargs.isEmpty else { throw fail("test \(name) takes no keyword arguments") }
                    a = args
                } else {
                    // `x is divisibleby 3`, `x is equalto 'a'`: one argument without parentheses.
                    switch peek {
                    case .string, .int, .double, .op("["), .op("{"), .op("("): a = [try postfix(try primary(), filters: false)]
                    case .name(let n) where !["else", "or", "and"].contains(n):
                        if n == "is" { throw fail("tests cannot be chained with is") }
                        a = [try postfix(try primary(), filters: false)]
                    default: break
                    }
                }
                e = .test(e, name, negated, a)
            } else {
                return e
            }
        }
    }
    mutating func primary() throws -> Expr {
        switch next() {
        case .string(var s):
            while case .string(let more) = peek { s += more; pos += 1 }   // adjacent literals concatenate
            return .literal(.string(s))
        case .int(let i): return .literal(.int(i))
        case .double(let d): return .literal(.double(d))
        case .name(let n):
            switch n {
            case "true", "True": return .literal(.bool(true))
            case "false", "False": return .literal(.bool(false))
            case "none", "None": return .literal(.none)
            default: return .name(n)
            }
        case .op("("):
            let e = try expression()
            try expect(")")
            return e
        case .op("["):
            var items: [Expr] = []
            if !accept("]") {
                repeat { if peek == .op("]") { break }; items.append(try expression()) } while accept(",")
                try expect("]")
            }
            return .list(items)
        case .op("{"):
            var items: [(String, Expr)] = []
            if !accept("}") {
                repeat {
                    if peek == .op("}") { break }
                    guard case .string(let k) = next() else { throw fail("dict keys must be string literals") }
                    try expect(":")
                    items.append((k, try expression()))
                } while accept(",")
                try expect("}")
            }
            return .dict(items)
        case .end: throw fail("expression ends too early")
        case let t: throw fail("unexpected \(t) in an expression")
        }
    }
}

// MARK: - Statements

private indirect enum Node {
    case text(String)
    case output(Expr, line: Int)
    case ifs([(Expr, [Node])], [Node]?)
    case forLoop([String], Expr, [Node], [Node]?, line: Int)
    case set(String, String?, Expr, line: Int)
    /// `{% break %}` / `{% continue %}` (transformers enables Jinja's loopcontrols extension).
    case loopControl(LoopSignal)
}

/// How a block of nodes ended: normally, or at a `break` or `continue` of the innermost loop.
private enum LoopSignal { case normal, breakLoop, continueLoop }

private struct Parser {
    let segments: [Segment]
    var pos = 0
    var loopDepth = 0
    var blockDepth = 0

    init(segments: [Segment]) { self.segments = segments }

    mutating func parseAll() throws -> [Node] {
        let (nodes, end) = try parseBlock(until: [])
        if let (word, line) = end { throw TemplateError("line \(line): {% \(word) %} without an opening tag") }
        return nodes
    }

    /// Parses nodes until a statement whose first word is in `until`; returns that word (and
    /// leaves its statement text in `lastStatement`).
    var lastStatement = ""
    mutating func parseBlock(until: Set<String>) throws -> ([Node], (String, Int)?) {
        blockDepth += 1
        defer { blockDepth -= 1 }
        var nodes: [Node] = []
        while pos < segments.count {
            let seg = segments[pos]; pos += 1
            switch seg {
            case .text(let t): nodes.append(.text(t))
            case .output(let src, let line):
                var p = try ExprParser(src, line: line)
                let e = try p.expression()
                guard p.atEnd() else { throw TemplateError("line \(line): unexpected text after the expression in {{ \(src) }}") }
                nodes.append(.output(e, line: line))
            case .statement(let src, let line):
                let word = src.prefix { $0.isLetter || $0 == "_" }
                let rest = String(src.dropFirst(word.count))
                if until.contains(String(word)) { lastStatement = rest; return (nodes, (String(word), line)) }
                if (word == "if" || word == "for") && blockDepth >= Limits.nesting {
                    throw TemplateError("line \(line): blocks nested more than \(Limits.nesting) levels deep")
                }
                switch word {
                case "if":
                    var branches: [(Expr, [Node])] = []
                    var cond = try Self.expr(rest, line)
                    var elseBody: [Node]?
                    while true {
                        let (body, end) = try parseBlock(until: ["elif", "else", "endif"])
                        guard let (w, l) = end else { throw TemplateError("line \(line): {% if %} is never closed with {% endif %}") }
                        if w == "elif" { branches.append((cond, body)); cond = try Self.expr(lastStatement, l); continue }
                        branches.append((cond, body))
                        if w == "else" {
                            let (eb, e2) = try parseBlock(until: ["endif"])
                            guard e2 != nil else { throw TemplateError("line \(line): {% if %} is never closed with {% endif %}") }
                            elseBody = eb
                        }
                        break
                    }
                    nodes.append(.ifs(branches, elseBody))
                case "for":
                    var p = try ExprParser(rest, line: line)
                    var names = [try p.identifier()]
                    while p.accept(",") { names.append(try p.identifier()) }
                    guard names.count <= 2, p.acceptName("in") else { throw TemplateError("line \(line): expected {% for x in … %} or {% for k, v in … %}") }
                    let iter = try p.orExpr()
                    guard p.atEnd() else { throw TemplateError("line \(line): {% for %} with a filter or recursive is not supported") }
                    loopDepth += 1
                    let (body, end) = try parseBlock(until: ["else", "endfor"])
                    loopDepth -= 1
                    guard let (w, _) = end else { throw TemplateError("line \(line): {% for %} is never closed with {% endfor %}") }
                    var elseBody: [Node]?
                    if w == "else" {
                        let (eb, e2) = try parseBlock(until: ["endfor"])
                        guard e2 != nil else { throw TemplateError("line \(line): {% for %} is never closed with {% endfor %}") }
                        elseBody = eb
                    }
                    nodes.append(.forLoop(names, iter, body, elseBody, line: line))
                case "set":
                    var p = try ExprParser(rest, line: line)
                    let name = try p.identifier()
                    let attr = p.accept(".") ? try p.identifier() : nil
                    guard p.accept("=") else { throw TemplateError("line \(line): block {% set %} … {% endset %} is not supported; use {% set name = … %}") }
                    let e = try p.expression()
                    guard p.atEnd() else { throw TemplateError("line \(line): unexpected text after {% set %}") }
                    nodes.append(.set(name, attr, e, line: line))
                case "generation":
                    // transformers' AssistantTracker: marks assistant text for return_assistant_tokens_mask;
                    // rendered as its body.
                    guard rest.trimmingCharacters(in: .whitespaces).isEmpty else { throw TemplateError("line \(line): unexpected text after {% generation %}") }
                    let (body, end) = try parseBlock(until: ["endgeneration"])
                    guard end != nil else { throw TemplateError("line \(line): {% generation %} is never closed with {% endgeneration %}") }
                    nodes.append(.ifs([(.literal(.bool(true)), body)], nil))
                case "break", "continue":
                    guard rest.trimmingCharacters(in: .whitespaces).isEmpty else { throw TemplateError("line \(line): unexpected text after {% \(word) %}") }
                    guard loopDepth > 0 else { throw TemplateError("line \(line): {% \(word) %} outside a {% for %} loop") }
                    nodes.append(.loopControl(word == "break" ? .breakLoop : .continueLoop))
                case "endif", "endfor", "elif", "else", "endgeneration":
                    throw TemplateError("line \(line): {% \(word) %} without an opening tag")
                default:
                    throw TemplateError("line \(line): {% \(word.isEmpty ? src : String(word)) %} is not supported by this chat-template interpreter")
                }
            }
        }
        return (nodes, nil)
    }

    static func expr(_ src: String, _ line: Int) throws -> Expr {
        var p = try ExprParser(src, line: line)
        let e = try p.expression()
        guard p.atEnd() else { throw TemplateError("line \(line): unexpected text after the condition") }
        return e
    }
}

// MARK: - Evaluation

private struct Context {
    var scopes: [[String: Value]]
    let now: Date
    var line = 0
    var steps = 0

    /// Counts one step of rendering; refuses a template that takes more than `Limits.steps`.
    mutating func step() throws {
        steps += 1
        guard steps <= Limits.steps else { throw fail("rendering takes more than \(Limits.steps) steps; is the template looping without end?") }
    }

    /// `v`, a value an expression made, charged to the steps by its size; refused when it is text
    /// longer than `Limits.textBytes`, a list longer than a million, or nested (with `inside`
    /// levels around it) more than `Limits.nesting` deep.
    mutating func bounded(_ v: Value, inside: Int = 0) throws -> Value {
        switch v {
        case .string(let s):
            guard s.utf8.count <= Limits.textBytes else { throw fail("a text grows past \(Limits.textBytes >> 20) MB") }
            steps += s.utf8.count >> 8
        case .list(let l):
            guard l.count <= 1 << 20 else { throw fail("a list grows past \(1 << 20) items") }
            steps += l.count
        case .dict(let d, _): steps += d.count
        default: break
        }
        try step()
        switch v {
        case .list, .dict, .namespace:
            guard Self.nesting(v) + inside <= Limits.nesting else { throw fail("a value nested more than \(Limits.nesting) levels deep") }
        default: break
        }
        return v
    }

    /// How deep lists, dicts and namespaces nest in `v`, counted no further than past the limit
    /// (so a namespace that holds itself is counted, not followed for ever).
    static func nesting(_ v: Value, _ level: Int = 0) -> Int {
        guard level <= Limits.nesting else { return level }
        switch v {
        case .list(let l): return l.reduce(level + 1) { max($0, nesting($1, level + 1)) }
        case .dict(let d, _): return d.values.reduce(level + 1) { max($0, nesting($1, level + 1)) }
        case .namespace(let n): return n.fields.values.reduce(level + 1) { max($0, nesting($1, level + 1)) }
        default: return level
        }
    }

    func lookup(_ n: String) -> Value {
        for s in scopes.reversed() { if let v = s[n] { return v } }
        return .undefined(n)
    }

    /// Appends to the rendered text, which may not grow past `Limits.textBytes`.
    func append(_ text: String, to out: inout String) throws {
        out += text
        if out.utf8.count > Limits.textBytes { throw fail("the rendered text grows past \(Limits.textBytes >> 20) MB") }
    }

    /// Renders `nodes`; stops early at a `break` or `continue` and says which.
    mutating func run(_ nodes: [Node], _ out: inout String) throws -> LoopSignal {
        for node in nodes {
            try step()
            switch node {
            case .loopControl(let signal): return signal
            case .text(let t):
                try append(t, to: &out)
            case .output(let e, let l):
                line = l
                try append(try eval(e).text(), to: &out)
            case .ifs(let branches, let elseBody):
                var taken = false
                var signal = LoopSignal.normal
                for (cond, body) in branches where try eval(cond).truthy { signal = try run(body, &out); taken = true; break }
                if !taken, let elseBody { signal = try run(elseBody, &out) }
                if signal != .normal { return signal }
            case .forLoop(let names, let iterExpr, let body, let elseBody, let l):
                line = l
                let items = try iterate(try eval(iterExpr))
                // As Jinja compiles it, the else branch runs unless some iteration reached the end
                // of the body (one ended by break or continue does not count).
                var completed = false
                for (i, item) in items.enumerated() {
                    try step()
                    var scope: [String: Value] = [:]
                    if names.count == 2 {
                        guard case .list(let pair) = item, pair.count == 2 else { throw TemplateError("line \(l): cannot unpack \(item.typeName) into two names") }
                        scope[names[0]] = pair[0]; scope[names[1]] = pair[1]
                    } else {
                        scope[names[0]] = item
                    }
                    let n = items.count
                    scope["loop"] = .dict(["index": .int(i + 1), "index0": .int(i), "first": .bool(i == 0), "last": .bool(i == n - 1),
                                           "length": .int(n), "revindex": .int(n - i), "revindex0": .int(n - i - 1),
                                           "previtem": i > 0 ? items[i - 1] : .undefined("previtem"),
                                           "nextitem": i + 1 < n ? items[i + 1] : .undefined("nextitem")],
                                          ["index", "index0", "first", "last", "length", "revindex", "revindex0"])
                    // Each iteration has its own scope: a `set` inside the loop does not leak out.
                    scopes.append(scope)
                    defer { scopes.removeLast() }
                    let signal = try run(body, &out)
                    if signal == .normal { completed = true }
                    if signal == .breakLoop { break }
                }
                if !completed, let elseBody {
                    let signal = try run(elseBody, &out)
                    if signal != .normal { return signal }
                }
            case .set(let name, let attr, let e, let l):
                line = l
                var v = try eval(e)
                if let attr {
                    v = try bounded(v, inside: 1)
                    guard case .namespace(let ns) = lookup(name) else { throw TemplateError("line \(l): \(name).\(attr) can only be set on a namespace()") }
                    ns.set(attr, v)
                } else {
                    scopes[scopes.count - 1][name] = v
                }
            }
        }
        return .normal
    }

    func fail(_ what: String) -> TemplateError { TemplateError("line \(line): \(what)") }

    func iterate(_ v: Value) throws -> [Value] {
        switch v {
        case .list(let l): return l
        case .string(let s):
            guard s.utf8.count <= 1 << 20 else { throw fail("a text of more than 1 MB cannot be iterated") }
            return s.map { .string(String($0)) }
        case .dict(_, let keys): return keys.map { .string($0) }
        case .undefined(let n): throw fail("\(n) is undefined and cannot be iterated")
        default: throw fail("a \(v.typeName) cannot be iterated")
        }
    }

    func member(_ v: Value, _ key: String) throws -> Value {
        switch v {
        case .dict(let d, _): return d[key] ?? (["items", "keys", "values", "get"].contains(key) ? .method(v, key) : .undefined(key))
        case .namespace(let n): return n.fields[key] ?? .undefined(key)
        case .string:
            let methods: Set<String> = ["strip", "lstrip", "rstrip", "startswith", "endswith", "upper", "lower", "title",
                                        "capitalize", "split", "replace"]
            guard methods.contains(key) else { throw fail("string method \(key) is not supported by this chat-template interpreter") }
            return .method(v, key)
        case .undefined(let n): throw fail("\(n) is undefined, so it has no attribute \(key)")
        default: return .undefined(key)
        }
    }

    mutating func eval(_ e: Expr) throws -> Value {
        switch e {
        case .literal(let v): return v
        case .name(let n): return lookup(n)
        case .list(let items):
            var values: [Value] = []
            for x in items { values.append(try eval(x)) }
            return try bounded(.list(values))
        case .dict(let items):
            var d: [String: Value] = [:], keys: [String] = []
            for (k, x) in items { if d[k] == nil { keys.append(k) }; d[k] = try eval(x) }
            return try bounded(.dict(d, keys))
        case .attr(let base, let name): return try member(try eval(base), name)
        case .index(let base, let idx):
            let b = try eval(base), i = try eval(idx)
            switch (b, i) {
            case (.list(let l), .int(let k)):
                let j = k < 0 ? l.count + k : k
                guard j >= 0 && j < l.count else { throw fail("list index \(k) out of range") }
                return l[j]
            case (.string(let s), .int(let k)):
                let chars = Array(s), j = k < 0 ? chars.count + k : k
                guard j >= 0 && j < chars.count else { throw fail("string index \(k) out of range") }
                return .string(String(chars[j]))
            case (_, .string(let key)): return try member(b, key)
            case (.undefined(let n), _): throw fail("\(n) is undefined and cannot be indexed")
            default: throw fail("a \(b.typeName) cannot be indexed by a \(i.typeName)")
            }
        case .slice(let base, let lo, let hi, let stepExpr):
            let b = try eval(base)
            func int(_ x: Expr?) throws -> Int? {
                guard let x else { return nil }
                let v = try eval(x)
                if case .none = v { return nil }
                guard case .int(let k) = v else { throw fail("slice bounds must be integers") }
                return k
            }
            let (start, stop, step) = (try int(lo), try int(hi), try int(stepExpr) ?? 1)
            guard step != 0 else { throw fail("slice step cannot be zero") }
            // Python's slice.indices, then every step-th index.
            func indices(_ n: Int) -> [Int] {
                func clamp(_ k: Int?, _ dflt: Int) -> Int {
                    guard let k else { return dflt }
                    if k < 0 { return max(k + n, step > 0 ? 0 : -1) }
                    return min(k, step > 0 ? n : n - 1)
                }
                var i = clamp(start, step > 0 ? 0 : n - 1)
                let end = clamp(stop, step > 0 ? n : -1)
                var out: [Int] = []
                while step > 0 ? i < end : i > end { out.append(i); i &+= step }
                return out
            }
            switch b {
            case .list(let l): return .list(indices(l.count).map { l[$0] })
            case .string(let s):
                let c = Array(s)
                return .string(String(indices(c.count).map { c[$0] }))
            default: throw fail("a \(b.typeName) cannot be sliced")
            }
        case .call(let fn, let argExprs, let kwExprs):
            let f = try eval(fn)
            let args = try argExprs.map { try eval($0) }
            var kwargs: [(String, Value)] = []
            for (k, x) in kwExprs { kwargs.append((k, try eval(x))) }
            return try bounded(try call(f, args, kwargs))
        case .filter(let base, let name, let argExprs, let kwExprs):
            let v = try eval(base)
            let args = try argExprs.map { try eval($0) }
            var kwargs: [String: Value] = [:]
            for (k, x) in kwExprs { kwargs[k] = try eval(x) }
            return try bounded(try filter(v, name, args, kwargs))
        case .test(let base, let name, let negated, let argExprs):
            let v = try eval(base)
            let args = try argExprs.map { try eval($0) }
            return .bool(try test(v, name, args) != negated)
        case .unary(let op, let x):
            let v = try eval(x)
            if op == "not" { return .bool(!v.truthy) }
            switch v {
            case .int(let i): return .int(-i)
            case .double(let d): return .double(-d)
            default: throw fail("cannot negate a \(v.typeName)")
            }
        case .ternary(let cond, let a, let b):
            if try eval(cond).truthy { return try eval(a) }
            return try b.map { try eval($0) } ?? .undefined("else")
        case .binary(let op, let l, let r):
            if op == "and" { let a = try eval(l); return a.truthy ? try eval(r) : a }
            if op == "or" { let a = try eval(l); return a.truthy ? a : try eval(r) }
            return try bounded(try binary(op, try eval(l), try eval(r)))
        }
    }

    /// Jinja's test `name` of `v` (`v is name(args)`).
    func test(_ v: Value, _ name: String, _ args: [Value]) throws -> Bool {
        func arg() throws -> Value {
            guard let a = args.first else { throw fail("test \(name) needs an argument") }
            return a
        }
        func int() throws -> Int {
            switch v {
            case .int(let i): return i
            case .bool(let b): return b ? 1 : 0
            default: throw fail("test \(name) needs an integer, not a \(v.typeName)")
            }
        }
        switch name {
        case "defined": return !v.isUndefined
        case "undefined": return v.isUndefined
        case "none": if case .none = v { return true } else { return false }
        case "string": if case .string = v { return true } else { return false }
        case "number": switch v { case .int, .double: return true; default: return false }
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "boolean": if case .bool = v { return true } else { return false }
        case "mapping": switch v { case .dict, .namespace: return true; default: return false }
        case "sequence", "iterable": switch v { case .list, .string, .dict: return true; default: return false }
        case "true": if case .bool(true) = v { return true } else { return false }
        case "false": if case .bool(false) = v { return true } else { return false }
        case "lower", "upper":
            guard case .string(let s) = v else { return false }
            return name == "lower" ? s == s.lowercased() : s == s.uppercased()
        case "odd": return try int() & 1 == 1
        case "even": return try int() & 1 == 0
        case "divisibleby":
            guard case .int(let n) = try arg(), n != 0 else { throw fail("divisibleby needs a non-zero integer") }
            return try int() % n == 0
        case "equalto", "eq", "==": return try equal(v, try arg())
        case "ne", "!=": return !(try equal(v, try arg()))
        case "lt", "<": return try binary("<", v, try arg()).truthy
        case "le", "<=": return try binary("<=", v, try arg()).truthy
        case "gt", ">": return try binary(">", v, try arg()).truthy
        case "ge", ">=": return try binary(">=", v, try arg()).truthy
        case "in": return try binary("in", v, try arg()).truthy
        default: throw fail("test \(name) is not supported by this chat-template interpreter")
        }
    }

    /// `item`'s attribute or key `path` (dotted: `a.b`), as `selectattr` and `map(attribute=)` read it.
    func attribute(_ item: Value, _ path: String) throws -> Value {
        var v = item
        for part in path.split(separator: ".", omittingEmptySubsequences: false) {
            if case .undefined = v { return v }
            if case .list(let l) = v, let i = Int(part) {
                v = i >= 0 && i < l.count ? l[i] : .undefined(String(part))
            } else {
                switch v {
                case .dict, .namespace: v = try member(v, String(part))
                default: v = .undefined(String(part))
                }
            }
        }
        return v
    }

    func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        switch op {
        case "~": return .string(try a.text() + b.text())
        case "==": return .bool(try equal(a, b))
        case "!=": return .bool(!(try equal(a, b)))
        case "in":
            switch b {
            case .string(let s): guard case .string(let x) = a else { throw fail("'in <string>' needs a string on the left") }; return .bool(s.contains(x))
            case .list(let l): return .bool(try l.contains { try equal($0, a) })
            case .dict(let d, _): if case .string(let k) = a { return .bool(d[k] != nil) }; return .bool(false)
            default: throw fail("'in' needs a string, list or dict on the right, not a \(b.typeName)")
            }
        default: break
        }
        switch (a, b) {
        case (.string(let x), .string(let y)):
            switch op {
            case "+": return .string(x + y)
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: break
            }
        case (.list(let x), .list(let y)) where op == "+": return .list(x + y)
        case (.int(let x), .int(let y)):
            switch op {
            case "+": return .int(x &+ y)
            case "-": return .int(x &- y)
            case "*": return .int(x &* y)
            case "//": guard y != 0 else { throw fail("division by zero") }; return .int(Int((Double(x) / Double(y)).rounded(.down)))
            case "%": guard y != 0 else { throw fail("division by zero") }; return .int(((x % y) + y) % y)
            case "/": guard y != 0 else { throw fail("division by zero") }; return .double(Double(x) / Double(y))
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: break
            }
        case (.double, .double), (.double, .int), (.int, .double):
            // Python's float arithmetic once either side is a float.
            func d(_ v: Value) -> Double { if case .int(let i) = v { return Double(i) }; if case .double(let x) = v { return x }; return 0 }
            let (x, y) = (d(a), d(b))
            switch op {
            case "+": return .double(x + y)
            case "-": return .double(x - y)
            case "*": return .double(x * y)
            case "/": guard y != 0 else { throw fail("division by zero") }; return .double(x / y)
            case "//": guard y != 0 else { throw fail("division by zero") }; return .double((x / y).rounded(.down))
            case "%": guard y != 0 else { throw fail("division by zero") }; let r = x.truncatingRemainder(dividingBy: y); return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
            case "<": return .bool(x < y)
            case ">": return .bool(x > y)
            case "<=": return .bool(x <= y)
            case ">=": return .bool(x >= y)
            default: break
            }
        case (.undefined(let n), _), (_, .undefined(let n)):
            throw fail("\(n) is undefined (in an expression with \(op))")
        default: break
        }
        throw fail("cannot apply \(op) to a \(a.typeName) and a \(b.typeName)")
    }

    /// `s` with every `a` replaced by `b`, refused before it is built when it could grow past
    /// `Limits.textBytes`.
    func replaced(_ s: String, _ a: String, _ b: String) throws -> String {
        guard !a.isEmpty else { return s }
        if b.utf8.count > a.utf8.count, s.utf8.count / a.utf8.count * b.utf8.count > Limits.textBytes {
            throw fail("replace could grow a text past \(Limits.textBytes >> 20) MB")
        }
        return s.replacingOccurrences(of: a, with: b)
    }

    func equal(_ a: Value, _ b: Value, depth: Int = 0) throws -> Bool {
        guard depth < Limits.nesting else { throw fail("values nested more than \(Limits.nesting) levels deep cannot be compared") }
        switch (a, b) {
        case (.none, .none): return true
        case (.bool(let x), .bool(let y)): return x == y
        case (.int(let x), .int(let y)): return x == y
        case (.double(let x), .double(let y)): return x == y
        case (.int(let x), .double(let y)), (.double(let y), .int(let x)): return Double(x) == y
        case (.string(let x), .string(let y)): return x == y
        case (.list(let x), .list(let y)): return try x.count == y.count && zip(x, y).allSatisfy { try equal($0, $1, depth: depth + 1) }
        default: return false
        }
    }

    func filter(_ v: Value, _ name: String, _ args: [Value], _ kwargs: [String: Value]) throws -> Value {
        // Jinja's string filters print any value first (`true | upper` is "TRUE").
        func str() throws -> String { try v.text() }
        switch name {
        case "trim": return .string(try str().trimmingCharacters(in: .whitespacesAndNewlines))
        case "lower": return .string(try str().lowercased())
        case "upper": return .string(try str().uppercased())
        case "capitalize": let s = try str(); return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
        case "title": return .string(try str().capitalized)
        case "string": return .string(try v.text())
        case "length", "count":
            switch v {
            case .string(let s): return .int(s.count)
            case .list(let l): return .int(l.count)
            case .dict(let d, _): return .int(d.count)
            default: throw fail("filter \(name) needs a string, list or dict, not a \(v.typeName)")
            }
        case "first", "last":
            let items = try iterate(v)
            return (name == "first" ? items.first : items.last) ?? .undefined(name)
        case "list": return .list(try iterate(v))
        case "join":
            let sep = try args.first?.text() ?? ""
            return .string(try Value.joined("", try iterate(v).map { item in { try item.text() } }, sep, "", depth: 0))
        case "default", "d":
            let useFalsy = args.count > 1 && args[1].truthy
            if v.isUndefined || (useFalsy && !v.truthy) { return args.first ?? .string("") }
            return v
        case "replace":
            guard args.count >= 2 else { throw fail("replace needs two arguments") }
            return .string(try replaced(try str(), try args[0].text(), try args[1].text()))
        case "items":
            switch v {
            case .dict(let d, let keys): return .list(keys.map { .list([.string($0), d[$0]!]) })
            case .namespace(let n): return .list(n.order.map { .list([.string($0), n.fields[$0]!]) })
            case .undefined: return .list([])
            default: throw fail("filter items needs a mapping, not a \(v.typeName)")
            }
        case "select", "reject", "selectattr", "rejectattr":
            // select/reject(test, args…) test each item; …attr(attribute, test, args…) test an
            // attribute of each; without a test, truthiness.
            let byAttr = name.hasSuffix("attr")
            var rest = args
            var path: String?
            if byAttr {
                guard case .string(let p)? = rest.first else { throw fail("filter \(name) needs an attribute name") }
                path = p
                rest.removeFirst()
            }
            var testName: String?
            if let first = rest.first {
                guard case .string(let t) = first, knownTests.contains(t) else {
                    throw fail("filter \(name): test \((try? first.text()) ?? first.typeName) is not supported by this chat-template interpreter")
                }
                testName = t
                rest.removeFirst()
            }
            let keep = name.hasPrefix("select")
            return .list(try iterate(v).filter { item in
                let x = try path.map { try attribute(item, $0) } ?? item
                let r = try testName.map { try test(x, $0, rest) } ?? x.truthy
                return r == keep
            })
        case "map":
            let items = try iterate(v)
            if case .string(let path)? = kwargs["attribute"] {
                return .list(try items.map { item in
                    let x = try attribute(item, path)
                    if x.isUndefined, let d = kwargs["default"] { return d }
                    return x
                })
            }
            guard case .string(let f)? = args.first, knownFilters.contains(f) else {
                throw fail("filter map needs attribute= or the name of a supported filter")
            }
            let rest = Array(args.dropFirst())
            return .list(try items.map { try filter($0, f, rest, [:]) })
        case "int", "float":
            // Python's int(x), else int(float(x)); float(x); the default (0) when neither reads x.
            var whole: Int?, number: Double?
            switch v {
            case .int(let i): whole = i
            case .bool(let b): whole = b ? 1 : 0
            case .double(let d): number = d
            case .string(let s):
                let t = s.trimmingCharacters(in: .whitespaces).replacingOccurrences(of: "_", with: "")
                whole = Int(t)
                // Python reads no hexadecimal floats, which Double(_:) would.
                if whole == nil && !t.contains(where: { $0 == "x" || $0 == "X" }) { number = Double(t) }
            default: break
            }
            if name == "int" {
                if let whole { return .int(whole) }
                guard let n = number, n.isFinite, abs(n) < 9e18 else { return args.first ?? .int(0) }
                return .int(Int(n.rounded(.towardZero)))
            }
            if let whole { return .double(Double(whole)) }
            guard let n = number else { return args.first ?? .double(0) }
            return .double(n)
        case "reverse":
            if case .string(let s) = v { return .string(String(s.reversed())) }
            return .list(try iterate(v).reversed())
        case "abs":
            switch v {
            case .int(let i): return .int(i == .min ? i : abs(i))
            case .double(let d): return .double(abs(d))
            default: throw fail("filter abs needs a number, not a \(v.typeName)")
            }
        default: // tojson
            var indent: Int?
            if case .int(let i)? = kwargs["indent"] ?? args.first { indent = i }
            return .string(try v.json(indent: indent))
        }
    }

    func call(_ f: Value, _ args: [Value], _ kwargs: [(String, Value)]) throws -> Value {
        switch f {
        case .function("strftime_now"):
            guard case .string(let fmt)? = args.first else { throw fail("strftime_now needs a format string") }
            return .string(strftime(fmt, now))
        case .function("raise_exception"):
            throw fail("the template raised an exception: \(try args.first?.text() ?? "")")
        case .function("namespace"), .function("dict"):
            let ns = Namespace()
            for (k, v) in kwargs { ns.set(k, v) }
            if case .function("dict") = f { return .dict(ns.fields, ns.order) }
            return .namespace(ns)
        case .function("range"):
            let ints = try args.map { v -> Int in guard case .int(let i) = v else { throw fail("range needs integers") }; return i }
            let (lo, hi) = ints.count >= 2 ? (ints[0], ints[1]) : (0, ints.first ?? 0)
            guard hi - lo <= 1 << 20 else { throw fail("range too long") }
            return .list(lo < hi ? (lo..<hi).map { .int($0) } : [])
        case .method(let base, let name):
            if case .dict(let d, let keys) = base {
                switch name {
                case "items": return .list(keys.map { .list([.string($0), d[$0]!]) })
                case "keys": return .list(keys.map { .string($0) })
                case "values": return .list(keys.map { d[$0]! })
                default:
                    guard case .string(let k)? = args.first else { throw fail("get needs a key") }
                    return d[k] ?? (args.count > 1 ? args[1] : .none)
                }
            }
            guard case .string(let s) = base else { throw fail("\(name) called on a \(base.typeName)") }
            func arg(_ i: Int) throws -> String? {
                guard i < args.count else { return nil }
                guard case .string(let a) = args[i] else { throw fail("\(name) needs string arguments") }
                return a
            }
            switch name {
            case "strip", "lstrip", "rstrip":
                let set = try arg(0).map { CharacterSet(charactersIn: $0) } ?? .whitespacesAndNewlines
                var scalars = Substring(s).unicodeScalars[...]
                if name != "rstrip" { while let c = scalars.first, set.contains(c) { scalars.removeFirst() } }
                if name != "lstrip" { while let c = scalars.last, set.contains(c) { scalars.removeLast() } }
                return .string(String(String.UnicodeScalarView(scalars)))
            case "startswith": return .bool(s.hasPrefix(try arg(0) ?? ""))
            case "endswith": return .bool(s.hasSuffix(try arg(0) ?? ""))
            case "upper": return .string(s.uppercased())
            case "lower": return .string(s.lowercased())
            case "title": return .string(s.capitalized)
            case "capitalize": return .string(s.prefix(1).uppercased() + s.dropFirst().lowercased())
            case "replace":
                guard let a = try arg(0), let b = try arg(1) else { throw fail("replace needs two arguments") }
                return .string(try replaced(s, a, b))
            default: // split
                if let sep = try arg(0) { return .list(s.components(separatedBy: sep).map { .string($0) }) }
                return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) })
            }
        case .undefined(let n): throw fail("\(n) is undefined and cannot be called")
        default: throw fail("a \(f.typeName) cannot be called")
        }
    }

    /// The strftime directives chat templates use, in the local time zone (as Python's
    /// `datetime.now().strftime`).
    func strftime(_ fmt: String, _ date: Date) -> String {
        let cal = Calendar(identifier: .gregorian)
        let c = cal.dateComponents(in: TimeZone.current, from: date)
        let months = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"]
        let days = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"]
        func two(_ v: Int?) -> String { String(format: "%02d", v ?? 0) }
        var out = ""
        var it = fmt.makeIterator()
        while let ch = it.next() {
            guard ch == "%", let d = it.next() else { out.append(ch); continue }
            switch d {
            case "d": out += two(c.day)
            case "m": out += two(c.month)
            case "Y": out += String(c.year ?? 0)
            case "y": out += two((c.year ?? 0) % 100)
            case "b": out += String(months[(c.month ?? 1) - 1].prefix(3))
            case "B": out += months[(c.month ?? 1) - 1]
            case "A": out += days[(c.weekday ?? 1) - 1]
            case "a": out += String(days[(c.weekday ?? 1) - 1].prefix(3))
            case "H": out += two(c.hour)
            case "M": out += two(c.minute)
            case "S": out += two(c.second)
            case "j": out += String(format: "%03d", cal.ordinality(of: .day, in: .year, for: date) ?? 0)
            case "%": out += "%"
            default: out += "%" + String(d)
            }
        }
        return out
    }
}
