import TransformerCore

/// `--temperature X [--top-k K] [--top-p P] [--greedy]`, the sampling options of the stages and
/// commands that sample, as one group of an option table.
public enum SamplingOptions {
    /// The group for a config whose sampling settings are `key`; `greedy` adds `--greedy`.
    public static func group<C>(_ key: WritableKeyPath<C, SamplingSettings>, greedy: Bool = false) -> ConfigOption<C> {
        var rows: [(label: String, help: [String])] = [
            ("--temperature X", ["sampling temperature"]),
            ("--top-k K", ["top-k sampling (default: off)"]),
            ("--top-p P", ["nucleus sampling (default 1: off)"]),
        ]
        if greedy { rows.append(("--greedy", ["always the most likely token"])) }
        return ConfigOption(
            rows: rows, valued: ["--temperature", "--top-k", "--top-p"], switches: greedy ? ["--greedy"] : [],
            shownDefault: { c in formatDefault(c[keyPath: key].temperature) }
        ) { c, given in
            c[keyPath: key] = try parse(given, start: c[keyPath: key])
        }
    }

    /// The settings the options give, starting from `start` (temperature 0.7 by default).
    public static func parse(_ given: GivenOptions, start: SamplingSettings = SamplingSettings(temperature: 0.7)) throws -> SamplingSettings {
        var s = start
        if let t = given.values["--temperature"] {
            guard let x = Float(t), x > 0, x.isFinite else { throw ConfigError("--temperature expects a positive number, got '\(t)'") }
            s.temperature = x
        }
        if let k = given.values["--top-k"] { s.topK = try parseInt("--top-k", k, range: 1...Int(Int32.max)) }
        if let p = given.values["--top-p"] {
            guard let x = Float(p), x > 0, x <= 1 else { throw ConfigError("--top-p expects a number in (0, 1], got '\(p)'") }
            s.topP = x
        }
        if given.flags.contains("--greedy") { s.greedy = true }
        return s
    }
}
