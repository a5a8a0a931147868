import Foundation

/// A problem with a stage's settings, in the words of its command line ("--lr must be positive").
/// The `rlhf` executable reports it as a usage error (exit status 2).
public struct ConfigError: Error, CustomStringConvertible {
    /// The message for the user.
    public let description: String

    /// A problem described by `message`.
    public init(_ message: String) { description = message }
}

/// The options and switches given on one command line, by name.
public struct GivenOptions: Sendable {
    /// `--name value` options.
    public var values: [String: String]
    /// `--flag` switches.
    public var flags: Set<String>

    /// The options `values` and the switches `flags`.
    public init(values: [String: String] = [:], flags: Set<String> = []) {
        self.values = values
        self.flags = flags
    }

    /// Whether the option or switch `name` was given.
    public func has(_ name: String) -> Bool { values[name] != nil || flags.contains(name) }
}

/// One command-line option of a stage's settings: its help and how it sets the settings.
///
/// The option table of a config type is the one place that names an option, describes it and
/// reads it, so the parser and `--help` can never disagree, and the default shown in the help
/// is read from the type's own default value.
public struct ConfigOption<Config> {
    /// The option's names as the help shows them (`--iterations N`), one row per entry when an
    /// option is a group (LoRA's).
    public let rows: [(label: String, help: [String])]
    /// The names the command line accepts with a value.
    public let valued: [String]
    /// The names the command line accepts as switches.
    public let switches: [String]
    /// The default shown in brackets after the first row's help, read from a default
    /// configuration; nil shows none.
    let shownDefault: (Config) -> String?
    /// Sets the configuration from the given options (those not given leave it as it is).
    let apply: (inout Config, GivenOptions) throws -> Void

    /// An option of its own making: `apply` reads whatever of `given` it needs.
    public init(
        rows: [(label: String, help: [String])], valued: [String], switches: [String] = [],
        shownDefault: @escaping (Config) -> String? = { _ in nil },
        apply: @escaping (inout Config, GivenOptions) throws -> Void
    ) {
        self.rows = rows
        self.valued = valued
        self.switches = switches
        self.shownDefault = shownDefault
        self.apply = apply
    }

    /// `name VALUE` read by `parse`, which returns the new value or throws a `ConfigError`.
    public static func value<T>(
        _ name: String, _ placeholder: String, _ key: WritableKeyPath<Config, T>, _ help: String...,
        shown: ((T) -> String?)? = nil, parse: @escaping (String) throws -> T
    ) -> ConfigOption {
        ConfigOption(
            rows: [("\(name) \(placeholder)", help)], valued: [name],
            shownDefault: { c in shown.map { $0(c[keyPath: key]) } ?? "\(c[keyPath: key])" },
            apply: { c, given in if let s = given.values[name] { c[keyPath: key] = try parse(s) } })
    }

    /// An integer option within `range`.
    public static func int(
        _ name: String, _ key: WritableKeyPath<Config, Int>, range: ClosedRange<Int>, _ help: String...,
        placeholder: String = "N"
    ) -> ConfigOption {
        ConfigOption(
            rows: [("\(name) \(placeholder)", help)], valued: [name], shownDefault: { "\($0[keyPath: key])" },
            apply: { c, given in if let s = given.values[name] { c[keyPath: key] = try parseInt(name, s, range: range) } })
    }

    /// A seed: a non-negative integer.
    public static func seed(_ key: WritableKeyPath<Config, UInt64>, _ help: String..., name: String = "--seed") -> ConfigOption {
        ConfigOption(
            rows: [("\(name) S", help)], valued: [name], shownDefault: { "\($0[keyPath: key])" },
            apply: { c, given in if let s = given.values[name] { c[keyPath: key] = UInt64(try parseInt(name, s, range: 0...Int.max)) } })
    }

    /// A finite number (`Float` or `Double`); `valid` may narrow it further, with `invalid` saying
    /// what was wanted.
    public static func number<T: BinaryFloatingPoint & LosslessStringConvertible>(
        _ name: String, _ key: WritableKeyPath<Config, T>, _ help: String..., placeholder: String = "X",
        valid: @escaping (T) -> Bool = { _ in true }, invalid: String? = nil
    ) -> ConfigOption {
        ConfigOption(
            rows: [("\(name) \(placeholder)", help)], valued: [name], shownDefault: { formatDefault($0[keyPath: key]) },
            apply: { c, given in
                if let s = given.values[name] { c[keyPath: key] = try parseNumber(name, s, valid: valid, invalid: invalid) }
            })
    }

    /// A switch that turns `key` on.
    public static func flag(_ name: String, _ key: WritableKeyPath<Config, Bool>, _ help: String...) -> ConfigOption {
        ConfigOption(
            rows: [(name, help)], valued: [], switches: [name], apply: { c, given in if given.flags.contains(name) { c[keyPath: key] = true } })
    }
}

/// An integer option's value, with the command line's messages.
public func parseInt(_ name: String, _ s: String, range: ClosedRange<Int>) throws -> Int {
    guard let v = Int(s) else { throw ConfigError("\(name) expects an integer, got '\(s)'") }
    guard range.contains(v) else { throw ConfigError("\(name) must be in \(range.lowerBound)...\(range.upperBound), got \(v)") }
    return v
}

/// A finite number option's value; `invalid` replaces the message when it is not valid.
public func parseNumber<T: BinaryFloatingPoint & LosslessStringConvertible>(
    _ name: String, _ s: String, valid: (T) -> Bool = { _ in true }, invalid: String? = nil
) throws -> T {
    guard let x = T(s), x.isFinite, valid(x) else { throw ConfigError(invalid ?? "\(name) expects a number, got '\(s)'") }
    return x
}

/// A default as the help shows it: 1 rather than 1.0, 1e-5 rather than 1e-05.
public func formatDefault<T: BinaryFloatingPoint & LosslessStringConvertible>(_ x: T) -> String {
    if x == x.rounded() && abs(x) < 1e6 { return String(Int(x)) }
    return "\(x)".replacingOccurrences(of: "e-0", with: "e-")
}

/// A stage's settings as one type: its defaults are the type's initial values, its command-line
/// options and their help are `options`, and `validationError` says what is wrong with a value.
/// Stored as JSON with the stage run, so `--resume` continues with the same settings.
public protocol StageConfig: Codable, Sendable {
    /// The settings with every default.
    init()
    /// The command-line options, in the order the help lists them.
    static var options: [ConfigOption<Self>] { get }
    /// Why these settings cannot run, or nil.
    var validationError: String? { get }
    /// What follows from the options given as a whole (a default that depends on another
    /// option, such as LoRA's learning rate); called after every option is read.
    mutating func finish(given: GivenOptions) throws
}

extension StageConfig {
    public var validationError: String? { nil }
    public mutating func finish(given: GivenOptions) throws {}

    /// Every option name that takes a value.
    public static var valuedOptions: [String] { options.flatMap(\.valued) }
    /// Every switch.
    public static var switchOptions: [String] { options.flatMap(\.switches) }

    /// The settings the command line gives: the defaults, then each option given, then
    /// `finish`, then validation.
    public static func parse(_ given: GivenOptions) throws -> Self {
        var c = Self()
        for o in options { try o.apply(&c, given) }
        try c.finish(given: given)
        if let problem = c.validationError { throw ConfigError(problem) }
        return c
    }

    /// The options' help rows with their defaults in brackets, descriptions from `column`.
    public static func help(column: Int) -> String {
        let defaults = Self()
        return HelpRows.render(
            options.map { o in
                var rows = o.rows
                // The default belongs to the first row (a group's other rows say their own).
                if let d = o.shownDefault(defaults), !rows.isEmpty, let line = rows[0].help.indices.last {
                    rows[0].help[line] += " [\(d)]"
                }
                return rows
            }.flatMap { $0 }, column: column)
    }
}

/// Help rows laid out as every command lays them out: the label indented by two, the
/// description from `column`, continuation lines aligned under it.
public enum HelpRows {
    /// The rows as text, one or more lines each.
    public static func render(_ rows: [(label: String, help: [String])], column: Int) -> String {
        let indent = String(repeating: " ", count: column)
        return rows.map { label, lines in
            let head = "  " + label
            let first = head.count < column ? head.padding(toLength: column, withPad: " ", startingAt: 0) : head + "\n" + indent
            return first + (lines.first ?? "") + lines.dropFirst().map { "\n" + indent + $0 }.joined()
        }.joined(separator: "\n")
    }
}
