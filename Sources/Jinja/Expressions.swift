indirect enum Expr {
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

enum Token: Equatable {
    case name(String), string(String), int(Int), double(Double), op(String), end
}

struct ExprLexer {
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

let knownFilters: Set<String> = [
    "trim", "length", "count", "lower", "upper", "capitalize", "title", "string",
    "first", "last", "join", "default", "d", "replace", "list", "tojson", "items",
    "select", "reject", "selectattr", "rejectattr", "map", "int", "float", "abs", "reverse",
]
let knownTests: Set<String> = [
    "defined", "undefined", "none", "string", "number", "integer", "float", "boolean",
    "mapping", "sequence", "iterable", "true", "false", "lower", "upper", "odd", "even",
    "divisibleby", "equalto", "eq", "==", "ne", "!=", "lt", "<", "le", "<=", "gt", ">",
    "ge", ">=", "in",
]

struct ExprParser {
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
        guard depth <= Limits.expression else {
            throw fail("an expression nested more than \(Limits.nesting) levels deep (a chain of operators, filters or attributes too long)")
        }
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
            if case .op(let o) = peek, ["==", "!=", "<", ">", "<=", ">="].contains(o) {
                pos += 1; try chain(&wraps); l = .binary(o, l, try concat()); continue
            }
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
            if accept("+") {
                try chain(&wraps); l = .binary("+", l, try multiplicative())
            } else if accept("-") {
                try chain(&wraps); l = .binary("-", l, try multiplicative())
            } else {
                return l
            }
        }
    }
    mutating func multiplicative() throws -> Expr {
        var l = try unary()
        var wraps = 0
        defer { depth -= wraps }
        while true {
            if case .op(let o) = peek, ["*", "/", "//", "%"].contains(o) {
                pos += 1; try chain(&wraps); l = .binary(o, l, try unary())
            } else {
                return l
            }
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
            while case .string(let more) = peek { s += more; pos += 1 } // adjacent literals concatenate
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
