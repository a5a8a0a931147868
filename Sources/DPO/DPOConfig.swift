import StageKit
import TransformerCore

/// Every setting of `rlhf dpo`: its defaults, its command-line options and their help, and its
/// validation. Stored with the stage run and reused on `--resume`.
public struct DPOConfig: StageConfig, Equatable {
    public var objective = DPOObjective()
    public var epochs = 3
    public var learningRate: Float = 1e-5
    /// Rankings per optimiser step.
    public var batch = 8
    /// Sequences per forward pass.
    public var microBatch = 16
    public var seed: UInt64 = 0
    /// The share of prompts held out, as train-reward holds them out (same seed, same split).
    public var validationFraction = 0.1
    public var maxGradNorm: Float = 1
    public var weightDecay: Float = 0
    /// Optimiser steps between checkpoints (each epoch's end is saved too).
    public var saveEvery = 50
    /// The model to train (nil: the run's latest policy).
    public var policyModel: Int64?
    /// The frozen reference (nil: the run's reference, else its base).
    public var referenceModel: Int64?
    /// The arithmetic of the matrix products (`--precision`); f32 in settings stored before it.
    public var precision = Precision.f32

    public init() {}

    /// A number read as a `Double` and then rounded to a `Float`, as this command always has.
    static func float(_ name: String, _ key: WritableKeyPath<DPOConfig, Float>, _ help: String) -> ConfigOption<DPOConfig> {
        .value(name, "X", key, help, shown: { formatDefault($0) }) { Float(try parseNumber(name, $0) as Double) }
    }

    public static let options: [ConfigOption<DPOConfig>] = [
        .number("--beta", \.objective.beta, "β"),
        .value("--loss", "KIND", \.objective.kind, "sigmoid, ipo or hinge", shown: { $0.rawValue }) {
            guard let kind = DPOLossKind(rawValue: $0) else { throw ConfigError("--loss must be sigmoid, ipo or hinge, got '\($0)'") }
            return kind
        },
        .number("--label-smoothing", \.objective.labelSmoothing, "ε in [0, 0.5), sigmoid loss only"),
        .int("--epochs", \.epochs, range: 1...10_000, "passes over the training rankings"),
        float("--lr", \.learningRate, "peak learning rate"),
        .int("--batch", \.batch, range: 1...100_000, "rankings per optimiser step"),
        .int("--micro-batch", \.microBatch, range: 1...4096, "sequences per forward pass"),
        float("--max-grad-norm", \.maxGradNorm, "gradient clipping"),
        float("--weight-decay", \.weightDecay, "AdamW weight decay"),
        .number("--val-fraction", \.validationFraction, "share of prompts held out", placeholder: "F"),
        .seed(\.seed, "seed of the split and the order"),
        .int("--save-every", \.saveEvery, range: 1...1_000_000, "steps between checkpoints"),
        // 'base' is resolved by the command, which knows the run.
        .value(
            "--policy", "ID|base", \.policyModel, "the model to train; base: the run's base model, to run DPO",
            "beside PPO from the same start", shown: { _ in "the run's latest policy" }
        ) {
            if $0 == "base" { return nil }
            guard let id = Int64($0) else { throw ConfigError("--policy expects a model id or 'base', got '\($0)'") }
            return id
        },
        .value("--reference", "ID", \.referenceModel, "the frozen reference", shown: { _ in "the run's reference, i.e. its base" }) {
            guard let id = Int64($0) else { throw ConfigError("--reference expects a model id, got '\($0)'") }
            return id
        },
        PrecisionOption.option(\.precision),
    ]

    /// Why these options cannot train, or nil.
    public var validationError: String? {
        if let e = objective.validationError { return e }
        if !(validationFraction > 0 && validationFraction < 1) { return "--val-fraction must be between 0 and 1 (exclusive)" }
        if !(learningRate > 0) || !learningRate.isFinite { return "--lr must be a positive number" }
        if !(maxGradNorm > 0) { return "--max-grad-norm must be positive" }
        return nil
    }
}
