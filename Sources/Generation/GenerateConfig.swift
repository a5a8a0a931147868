import RunStore
import StageKit
import TransformerCore

/// Every setting of `rlhf generate`: its defaults, its command-line options and their help.
/// Stored with the stage run under the keys below.
public struct GenerateConfig: StageConfig, Equatable {
    /// Completions wanted per prompt (K).
    public var perPrompt = 4
    /// New tokens at most (N).
    public var maxNewTokens = 48
    /// Temperature, top-k, top-p.
    public var sampling = SamplingSettings(temperature: 0.7)
    /// Seed; each batch's generator is derived from it and the batch's prompts, so a resumed
    /// run draws the same completions as an uninterrupted one.
    public var seed: UInt64 = 0
    /// Which prompts; nil means both splits.
    public var split: PromptSplit? = .train
    /// At most this many prompts in this run.
    public var limit: Int?
    /// Generate K more for every prompt even when it already has K from the current policy.
    public var again = false
    /// Sequences per forward pass.
    public var batchSize = 32
    /// The arithmetic of the matrix products (`--precision`); f32 in settings stored before it.
    public var precision = Precision.f32

    public init() {}

    public static let options: [ConfigOption<GenerateConfig>] = [
        .int("--per-prompt", \.perPrompt, range: 1...64, "completions per prompt", placeholder: "K"),
        .int("--max-new-tokens", \.maxNewTokens, range: 1...100_000, "new tokens at most"),
        SamplingOptions.group(\.sampling),
        .seed(\.seed, "random seed"),
        .value("--split", "S", \.split, "train, eval or all", shown: { $0?.rawValue ?? "all" }) { s in
            if s == "all" { return nil }
            guard let split = PromptSplit(rawValue: s) else { throw ConfigError("--split must be train, eval or all, got '\(s)'") }
            return split
        },
        .value("--limit", "N", \.limit, "at most N prompts in this run", shown: { _ in nil }) { try parseInt("--limit", $0, range: 1...Int.max) },
        .flag("--again", \.again, "K more completions even for prompts that have K already"),
        .int("--batch", \.batchSize, range: 1...4096, "sequences per forward pass", placeholder: "B"),
        PrecisionOption.option(\.precision),
    ]

    enum CodingKeys: String, CodingKey {
        case perPrompt = "per_prompt", maxNewTokens = "max_new_tokens", temperature, topK = "top_k", topP = "top_p", greedy, seed, split
        case limit, again, batchSize = "batch_size", precision
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        perPrompt = try c.decode(Int.self, forKey: .perPrompt)
        maxNewTokens = try c.decode(Int.self, forKey: .maxNewTokens)
        sampling = SamplingSettings(
            greedy: try c.decode(Bool.self, forKey: .greedy), temperature: try c.decode(Float.self, forKey: .temperature),
            topK: try c.decodeIfPresent(Int.self, forKey: .topK), topP: try c.decode(Float.self, forKey: .topP))
        seed = try c.decode(UInt64.self, forKey: .seed)
        split = try c.decodeIfPresent(PromptSplit.self, forKey: .split)
        limit = try c.decodeIfPresent(Int.self, forKey: .limit)
        again = try c.decode(Bool.self, forKey: .again)
        batchSize = try c.decode(Int.self, forKey: .batchSize)
        precision = try c.decodeIfPresent(Precision.self, forKey: .precision) ?? .f32
    }

    /// Every key, the sampling settings flat and null where a setting is absent, as the stored
    /// settings have always had them.
    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(perPrompt, forKey: .perPrompt)
        try c.encode(maxNewTokens, forKey: .maxNewTokens)
        try c.encode(sampling.temperature, forKey: .temperature)
        try c.encode(sampling.topK, forKey: .topK)
        try c.encode(sampling.topP, forKey: .topP)
        try c.encode(sampling.greedy, forKey: .greedy)
        try c.encode(seed, forKey: .seed)
        try c.encode(split, forKey: .split)
        try c.encode(limit, forKey: .limit)
        try c.encode(again, forKey: .again)
        try c.encode(batchSize, forKey: .batchSize)
        try c.encode(precision, forKey: .precision)
    }
}
