import Foundation

// Jinja's tests and filters.
extension Context {
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
        case "number":
            switch v {
            case .int, .double: return true;
            default: return false
            }
        case "integer": if case .int = v { return true } else { return false }
        case "float": if case .double = v { return true } else { return false }
        case "boolean": if case .bool = v { return true } else { return false }
        case "mapping":
            switch v {
            case .dict, .namespace: return true;
            default: return false
            }
        case "sequence", "iterable":
            switch v {
            case .list, .string, .dict: return true;
            default: return false
            }
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
            return .list(
                try iterate(v).filter { item in
                    let x = try path.map { try attribute(item, $0) } ?? item
                    let r = try testName.map { try test(x, $0, rest) } ?? x.truthy
                    return r == keep
                })
        case "map":
            let items = try iterate(v)
            if case .string(let path)? = kwargs["attribute"] {
                return .list(
                    try items.map { item in
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
}
