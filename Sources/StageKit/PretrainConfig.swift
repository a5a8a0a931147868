import TransformerCore

/// Every setting of `rlhf pretrain`: its defaults, its command-line options and their help, and
/// its validation. The trainer's own settings are `training`.
public struct PretrainConfig: StageConfig, Equatable {
    /// The corpus file (required).
    public var corpus: String?
    /// The output folder (required).
    public var output: String?
    /// S or M.
    public var size = "S"
    /// gpt2 or llama.
    public var arch = "gpt2"
    /// Tokenizer size including <|endoftext|> and <|pad|>.
    public var vocabSize = 1024
    /// The prompt template stored with the model; nil stores none.
    public var template: String? = "Q: {prompt}\nA:"
    /// Steps, batch, learning rate and seed of the trainer.
    public var training = PretrainSettings()
    /// The arithmetic of the matrix products (`--precision`).
    public var precision = Precision.f32

    public init() {}

    public static let options: [ConfigOption<PretrainConfig>] = [
        .value("--corpus", "FILE", \.corpus, "the corpus", shown: { _ in nil }) { $0 },
        .value("-o", "DIR", \.output, "output folder (replaced if it exists)", shown: { _ in nil }) { $0 },
        .value("--config", "C", \.size, "S or M") { $0 },
        .value("--arch", "A", \.arch, "gpt2 or llama") { $0 },
        .int("--vocab-size", \.vocabSize, range: 258...1 << 20, "tokenizer size including <|endoftext|> and <|pad|>"),
        .int("--steps", \.training.steps, range: 1...10_000_000, "optimiser steps"),
        .int("--batch", \.training.batch, range: 1...4096, "sequences per step", placeholder: "B"),
        .value("--lr", "X", \.training.learningRate, "peak learning rate (cosine decay after 40 warmup steps)", shown: { formatDefault($0) }) {
            guard let x = Float($0), x > 0, x < 1 else { throw ConfigError("--lr expects a number in (0, 1), got '\($0)'") }
            return x
        },
        .seed(\.training.seed, "seed for initialisation, data order and the validation split"),
        .value(
            "--template", "T", \.template, "prompt template stored with the model; \"none\" stores none",
            shown: { $0.map { "\"\($0.replacingOccurrences(of: "\n", with: "\\n"))\"" } ?? "none" }
        ) { $0 == "none" ? nil : $0 },
        PrecisionOption.option(\.precision),
    ]

    /// The model's configuration: the preset that --config and --arch name.
    public var modelConfig: ModelConfig? {
        guard ["S", "M"].contains(size.uppercased()) else { return nil }
        return ModelConfig.preset(arch == "llama" ? "llama-" + size.lowercased() : size)
    }

    public mutating func finish(given: GivenOptions) throws {
        guard corpus != nil else { throw ConfigError("--corpus FILE is required") }
        guard output != nil else { throw ConfigError("-o DIR is required") }
        guard arch == "gpt2" || arch == "llama" else { throw ConfigError("--arch must be gpt2 or llama, got '\(arch)'") }
        guard let config = modelConfig else { throw ConfigError("--config must be S or M, got '\(size)'") }
        training.length = config.nCtx
    }

    public var validationError: String? {
        if let t = template, !t.contains("{prompt}") { return "--template must contain {prompt}" }
        return nil
    }
}
