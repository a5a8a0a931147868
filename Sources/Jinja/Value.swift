import Foundation

/// A Jinja value.
indirect enum Value {
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
        case .dict(let d, let keys):
            return try Value.joined("{", keys.map { k in { "'\(k)': " + (try d[k]!.repr(depth: depth + 1)) } }, ", ", "}", depth: depth)
        case .namespace: return "<Namespace>"
        case .function(let f), .method(_, let f): return "<function \(f)>"
        }
    }

    /// Python's repr(), for values inside printed lists.
    func repr(depth: Int = 0) throws -> String {
        if case .string(let s) = self {
            return "'"
                + s.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'")
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
        case .string(let s): return jsonQuote(s)
        case .list(let l):
            if l.isEmpty { return "[]" }
            return try Value.joined(
                "[", l.map { v in { pad(level + 1) + (try v.json(indent: indent, level: level + 1)) } },
                sep, pad(level) + "]", depth: level)
        case .dict(let d, let keys):
            if keys.isEmpty { return "{}" }
            return try Value.joined(
                "{",
                keys.map { k in
                    return { pad(level + 1) + jsonQuote(k) + ": " + (try d[k]!.json(indent: indent, level: level + 1)) }
                }, sep, pad(level) + "}", depth: level)
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

final class Namespace {
    var fields: [String: Value] = [:]
    var order: [String] = []
    func set(_ k: String, _ v: Value) { if fields[k] == nil { order.append(k) }; fields[k] = v }
}

/// `s` as a JSON string literal: quotes, backslashes and control characters escaped, other
/// characters written as UTF-8. Templates' `tojson` writes strings so, and TransformerCore's
/// `JSONText.quote` is this function.
public func jsonQuote(_ s: String) -> String {
    var out = "\""
    out.reserveCapacity(s.utf8.count + 2)
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 || u.value == 0x7F || (0x2028...0x2029).contains(u.value) {
                out += String(format: "\\u%04x", u.value)
            } else {
                out.unicodeScalars.append(u)
            }
        }
    }
    out += "\""
    return out
}
