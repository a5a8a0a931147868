import Foundation

/// A usage error: the command line itself is wrong (exit status 2).
struct UsageError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// A failure while doing the work (exit status 1).
struct RuntimeError: Error, CustomStringConvertible {
    let description: String
    init(_ message: String) { description = message }
}

/// Parsed `--name value` options, `--flag` switches and positional arguments of one command.
///
/// Each command declares the options and flags it accepts; anything else is a usage error, so a
/// typo never silently falls back to a default.
struct Arguments {
    private(set) var options: [String: String] = [:]
    private(set) var flags: Set<String> = []
    private(set) var positional: [String] = []

    /// Parses `args` given the accepted option names (taking a value) and flag names.
    /// `--name=value` and `--name value` both work; `--` ends option parsing.
    init(_ args: [String], options accepted: Set<String>, flags acceptedFlags: Set<String>) throws {
        var i = 0
        var onlyPositional = false
        while i < args.count {
            let a = args[i]
            i += 1
            if onlyPositional || !a.hasPrefix("-") || a == "-" { positional.append(a); continue }
            if a == "--" { onlyPositional = true; continue }
            var name = a
            var inline: String?
            if let eq = a.firstIndex(of: "=") { name = String(a[..<eq]); inline = String(a[a.index(after: eq)...]) }
            if acceptedFlags.contains(name) {
                if inline != nil { throw UsageError("\(name) takes no value") }
                flags.insert(name)
            } else if accepted.contains(name) {
                if let inline { options[name] = inline; continue }
                guard i < args.count else { throw UsageError("\(name) needs a value") }
                options[name] = args[i]
                i += 1
            } else {
                throw UsageError("unknown option '\(a)'")
            }
        }
    }

    func flag(_ name: String) -> Bool { flags.contains(name) }
    /// Whether the option or switch `name` was given.
    func has(_ name: String) -> Bool { options[name] != nil || flags.contains(name) }
    func string(_ name: String) -> String? { options[name] }

    func int(_ name: String, default value: Int? = nil, range: ClosedRange<Int>? = nil) throws -> Int? {
        guard let s = options[name] else { return value }
        guard let v = Int(s) else { throw UsageError("\(name) expects an integer, got '\(s)'") }
        if let range, !range.contains(v) { throw UsageError("\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(v)") }
        return v
    }

    func list(_ name: String) -> [String]? {
        options[name].map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } }
    }
}
