import Foundation

// The global functions and the methods of strings and dicts.
extension Context {
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
            let ints = try args.map { v -> Int in
                guard case .int(let i) = v else { throw fail("range needs integers") }; return i
            }
            let (lo, hi) = ints.count >= 2 ? (ints[0], ints[1]) : (0, ints.first ?? 0)
            // hi - lo can overflow (range(-9223372036854775807 - 1, 9223372036854775807)).
            let (span, overflow) = hi.subtractingReportingOverflow(lo)
            guard lo >= hi || (!overflow && span <= 1 << 20) else { throw fail("range too long") }
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
