import TransformerCore

/// `--precision f32|bf16`, the arithmetic of the matrix products (`Kernels.precision`), as one
/// option of a stage's table.
///
/// Each stage's config stores it under the key "precision", so `--resume` continues in the
/// precision the run started with; settings stored before the option existed read as f32 (see
/// the `KeyedDecodingContainer` extension below). A stage runs its work in its settings'
/// precision: the stored one when it resumes.
public enum PrecisionOption {
    /// The option's name.
    public static let name = "--precision"

    /// The values the option accepts, as the messages list them: "f32 or bf16".
    static var allowed: String {
        let names = Precision.allCases.map(\.rawValue)
        return names.dropLast().joined(separator: ", ") + " or " + names.last!
    }

    /// The option for a config whose precision is `key`.
    public static func option<C>(_ key: WritableKeyPath<C, Precision>) -> ConfigOption<C> {
        .value(
            name, "P", key, "f32, or bf16: the operands of the matrix products rounded to",
            "bfloat16, their sums in single precision (autocast)", shown: { $0.rawValue }
        ) { try parse($0) }
    }

    /// One value of `--precision`; anything else throws a `ConfigError` naming the values allowed.
    public static func parse(_ s: String) throws -> Precision {
        guard let p = Precision(rawValue: s) else { throw ConfigError("\(name) must be \(allowed), got '\(s)'") }
        return p
    }

    /// A comma-separated list of values (`rlhf bench --precision f32,bf16`), each once, in the
    /// order given.
    public static func parseList(_ s: String) throws -> [Precision] {
        var list: [Precision] = []
        for item in s.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !item.isEmpty {
            let p = try parse(item)
            if !list.contains(p) { list.append(p) }
        }
        if list.isEmpty { throw ConfigError("\(name) needs at least one of \(allowed)") }
        return list
    }

    /// The precision given in `given`, f32 when absent.
    public static func parse(_ given: GivenOptions) throws -> Precision {
        try given.values[name].map(parse) ?? .f32
    }
}

extension KeyedDecodingContainer {
    /// A stored precision, f32 where the key is missing: the settings of runs made before
    /// `--precision` existed. The decoding Swift writes for a config type calls this rather than
    /// the generic `decode`, being the more specific, so every config reads old settings as f32
    /// (`StoredSettingsTests` reads such a run).
    public func decode(_ type: Precision.Type, forKey key: Key) throws -> Precision {
        try decodeIfPresent(Precision.self, forKey: key) ?? .f32
    }
}
