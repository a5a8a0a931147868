import StageKit
import TransformerCore

/// Every setting of `rlhf compare` that the stage run stores: its defaults, its command-line
/// options and their help.
public struct CompareConfig: StageConfig, Equatable {
    /// The two models.
    public var a: Int64 = 0, b: Int64 = 0
    /// reward, lexicon, length, or human (a person at the terminal, blind to which model is which).
    public var judge = "reward"
    public var perPrompt = 4
    public var maxNewTokens = 48
    public var temperature: Float = 0.7
    public var seed: UInt64 = 2024
    /// The prompts sampled: the run's eval split.
    public var split = "eval"
    /// The arithmetic of the matrix products (`--precision`); f32 in settings stored before it.
    public var precision = Precision.f32

    public init() {}

    static func model(_ name: String, _ key: WritableKeyPath<CompareConfig, Int64>, _ help: String) -> ConfigOption<CompareConfig> {
        .value(name, "ID", key, help, shown: { _ in nil }) {
            guard let v = Int64($0) else { throw ConfigError("\(name) expects a model id, got '\($0)'") }
            return v
        }
    }

    public static let options: [ConfigOption<CompareConfig>] = [
        model("--a", \.a, "the first model (a policy of the run)"),
        model("--b", \.b, "the second model"),
        .value("--judge", "J", \.judge, "reward, lexicon, length or human") {
            guard CompareConfig.judges.contains($0) else { throw ConfigError("--judge must be reward, lexicon, length or human, got '\($0)'") }
            return $0
        },
        .int("--samples", \.perPrompt, range: 1...1000, "completions per prompt and model (with --judge human: 1)"),
        .int("--max-new-tokens", \.maxNewTokens, range: 1...100_000, "new tokens at most"),
        .value("--temperature", "X", \.temperature, "sampling temperature", shown: { formatDefault($0) }) {
            guard let x = Float($0), x > 0, x.isFinite else { throw ConfigError("--temperature expects a positive number, got '\($0)'") }
            return x
        },
        .seed(\.seed, "seed of both models' sampling"),
        PrecisionOption.option(\.precision),
    ]

    /// The judges `--judge` accepts.
    public static let judges = ["reward", "lexicon", "length", "human"]

    /// Both models must be named, except to list the results of human judging (`--results`,
    /// the command's own switch). A person judges one pair per prompt unless `--samples` says more.
    public mutating func finish(given: GivenOptions) throws {
        if judge == "human" && !given.has("--samples") { perPrompt = 1 }
        if given.has("--results") {
            guard judge == "human" else { throw ConfigError("--results lists the results of human judging; add --judge human") }
            return
        }
        for name in ["--a", "--b"] where !given.has(name) {
            throw ConfigError("\(name) ID is required (model ids are listed by 'rlhf status')")
        }
    }
}
