import Foundation

struct Context {
    var scopes: [[String: Value]]
    let now: Date
    var line = 0
    var steps = 0
    /// The UTF-8 byte ranges of the output that `{% generation %}` blocks wrote, in order.
    var generationRanges: [Range<Int>] = []

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
            case .generation(let body):
                let start = out.utf8.count
                let signal = try run(body, &out)
                let end = out.utf8.count
                if end > start { generationRanges.append(start..<end) }
                if signal != .normal { return signal }
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
                        guard case .list(let pair) = item, pair.count == 2 else {
                            throw TemplateError("line \(l): cannot unpack \(item.typeName) into two names")
                        }
                        scope[names[0]] = pair[0]; scope[names[1]] = pair[1]
                    } else {
                        scope[names[0]] = item
                    }
                    let n = items.count
                    scope["loop"] = .dict(
                        [
                            "index": .int(i + 1), "index0": .int(i), "first": .bool(i == 0), "last": .bool(i == n - 1),
                            "length": .int(n), "revindex": .int(n - i), "revindex0": .int(n - i - 1),
                            "previtem": i > 0 ? items[i - 1] : .undefined("previtem"),
                            "nextitem": i + 1 < n ? items[i + 1] : .undefined("nextitem"),
                        ],
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
                    guard case .namespace(let ns) = lookup(name) else {
                        throw TemplateError("line \(l): \(name).\(attr) can only be set on a namespace()")
                    }
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
            let methods: Set<String> = [
                "strip", "lstrip", "rstrip", "startswith", "endswith", "upper", "lower", "title",
                "capitalize", "split", "replace",
            ]
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
            case .int(let i): return .int(0 &- i) // wraps, as + and - do (-Int.min would trap)
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

    func binary(_ op: String, _ a: Value, _ b: Value) throws -> Value {
        switch op {
        case "~": return .string(try a.text() + b.text())
        case "==": return .bool(try equal(a, b))
        case "!=": return .bool(!(try equal(a, b)))
        case "in":
            switch b {
            case .string(let s):
                guard case .string(let x) = a else { throw fail("'in <string>' needs a string on the left") }
                return .bool(s.contains(x))
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
            case "%":
                guard y != 0 else { throw fail("division by zero") }
                let r = x.truncatingRemainder(dividingBy: y)
                return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
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
}
