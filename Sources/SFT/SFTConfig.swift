import Foundation
import StageKit
import TransformerCore

/// Where the demonstrations `rlhf sft` trains on come from, besides those already in the run.
public enum DemonstrationSource: Codable, Equatable, Sendable {
    /// Only the run's demonstrations (written in `rlhf label --write`, or imported).
    case demonstrations
    /// Each current ranking's top completion becomes a demonstration first (source `rankings`).
    case rankings
    /// N completions per train prompt are sampled from the policy and the one the scorer likes
    /// best becomes a demonstration first (source `best-of:N`): rejection sampling.
    case bestOf(Int)

    /// `demonstrations`, `rankings` or `best-of:N`, as `--from` takes it and the run stores it.
    public var name: String {
        switch self {
        case .demonstrations: return "demonstrations"
        case .rankings: return "rankings"
        case .bestOf(let n): return "best-of:\(n)"
        }
    }

    /// `--from`'s value: `demonstrations`, `rankings`, `best-of:N` (or `best-of N`, which the
    /// command joins into one).
    public static func parse(_ s: String) throws -> DemonstrationSource {
        switch s {
        case "demonstrations": return .demonstrations
        case "rankings": return .rankings
        default:
            guard s.hasPrefix("best-of:") || s.hasPrefix("best-of=") else {
                throw ConfigError("--from must be demonstrations, rankings or best-of N, got '\(s)'")
            }
            return .bestOf(try parseInt("--from best-of", String(s.dropFirst(8)), range: 2...1024))
        }
    }

    public init(from decoder: Decoder) throws {
        let s = try decoder.singleValueContainer().decode(String.self)
        do { self = try Self.parse(s) } catch {
            throw DecodingError.dataCorrupted(.init(codingPath: decoder.codingPath, debugDescription: "\(error)"))
        }
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
}

/// What scores the N samples of `--from best-of N`.
public enum BestOfScorer: String, Codable, Sendable, CaseIterable {
    /// The run's reward model.
    case rm
    /// The lexicon labeler's score (positive minus negative words).
    case lexicon
    /// The length labeler's score (closeness to --target-length words).
    case length
}

/// Every setting of `rlhf sft`: its defaults, its command-line options and their help, and its
/// validation. Stored with the stage run and reused on `--resume`. The names and defaults follow
/// TRL's `SFTConfig` (and the `TrainingArguments` under it) where it has the setting:
/// learning_rate 2e-5, num_train_epochs 3, per_device_train_batch_size 8, max_length 1024
/// (truncating the end), weight_decay 0, max_grad_norm 1, a linear decay without warmup, and the
/// loss on the completion only (`completion_only_loss`; the assistant's turns for conversations,
/// `assistant_only_loss`).
public struct SFTConfig: StageConfig, Equatable {
    /// TRL's `num_train_epochs`.
    public var epochs = 3
    /// TRL's `learning_rate`.
    public var learningRate: Float = 2e-5
    /// Demonstrations per optimiser step (TRL's `per_device_train_batch_size`).
    public var batch = 8
    /// Sequences per forward/backward pass (gradient accumulation within a step); nil is `batch`.
    public var microBatch: Int?
    /// Tokens per sequence at most, prompt included; the end is cut (TRL's `max_length`,
    /// `truncation_mode` keep_start). The model's context bounds it too.
    public var maxLength = 1024
    public var weightDecay: Float = 0
    public var maxGradNorm: Float = 1
    public var seed: UInt64 = 0
    /// The share of demonstration prompts held out when the run has no demonstrations of eval
    /// prompts (same seed, same split rule as train-reward and DPO).
    public var validationFraction = 0.1
    /// Optimiser steps between checkpoints (each epoch's end is saved too).
    public var saveEvery = 50
    /// Rejection sampling before training.
    public var from = DemonstrationSource.demonstrations
    /// What scores best-of-N samples.
    public var scorer = BestOfScorer.rm
    /// The lexicon of `--scorer lexicon` (an absolute path once parsed).
    public var lexicon = "labels/lexicon"
    /// `--scorer length`'s best length in words.
    public var targetLength = 30
    /// Best-of-N sampling: new tokens at most, and the sampling settings.
    public var responseLength = 48
    public var sampling = SamplingSettings(temperature: 0.7)
    /// LoRA adapters over the frozen starting weights; nil trains every weight.
    public var lora: LoRAConfig?
    /// With LoRA, the float type the frozen weights are held in; nil is f32.
    public var frozenDType: FrozenDType?
    /// The model to train (nil: the run's latest policy).
    public var policyModel: Int64?
    /// Leave the run's reference as it is, instead of making the SFT policy the reference of the
    /// stages after it.
    public var keepReference = false
    /// The arithmetic of the matrix products (`--precision`).
    public var precision = Precision.f32

    public init() {}

    /// Sequences per pass in use.
    public var rowsPerPass: Int { microBatch ?? batch }

    public static let options: [ConfigOption<SFTConfig>] = [
        .value(
            "--from", "SOURCE", \.from, "demonstrations: the run's own; rankings: each ranking's top completion",
            "first; best-of N: the best of N samples of each train prompt", "first", shown: { $0.name }
        ) { try DemonstrationSource.parse($0) },
        .value("--scorer", "S", \.scorer, "rm, lexicon or length: what picks the best of N", shown: { $0.rawValue }) {
            guard let s = BestOfScorer(rawValue: $0) else { throw ConfigError("--scorer must be rm, lexicon or length, got '\($0)'") }
            return s
        },
        .value("--lexicon", "DIR", \.lexicon, "the word lists of --scorer lexicon") { $0 },
        .int("--target-length", \.targetLength, range: 1...100_000, "--scorer length's best length, in words"),
        .int("--response-length", \.responseLength, range: 1...100_000, "best-of N: new tokens at most per sample"),
        SamplingOptions.group(\.sampling),
        .int("--epochs", \.epochs, range: 1...10_000, "passes over the demonstrations (num_train_epochs)"),
        .number("--lr", \.learningRate, "peak learning rate, linear decay to 0", valid: { $0 > 0 }, invalid: "--lr must be positive"),
        .int("--batch", \.batch, range: 1...100_000, "demonstrations per optimiser step"),
        .value("--micro-batch", "N", \.microBatch, "sequences per forward/backward pass", shown: { _ in "--batch" }) {
            Optional(try parseInt("--micro-batch", $0, range: 1...4096))
        },
        .int("--max-length", \.maxLength, range: 2...1_000_000, "tokens per sequence at most, prompt included (the end is cut)"),
        .number("--weight-decay", \.weightDecay, "AdamW weight decay", valid: { $0 >= 0 }, invalid: "--weight-decay must not be negative"),
        .number("--max-grad-norm", \.maxGradNorm, "gradient clipping", valid: { $0 > 0 }, invalid: "--max-grad-norm must be positive"),
        .number("--val-fraction", \.validationFraction, "share of prompts held out without eval demonstrations", placeholder: "F"),
        .seed(\.seed, "seed of the split, the order and the samples"),
        .int("--save-every", \.saveEvery, range: 1...1_000_000, "steps between checkpoints"),
        // 'base' is resolved by the command, which knows the run.
        .value(
            "--policy", "ID|base", \.policyModel, "the model to train; base: the run's base model",
            shown: { _ in "the run's latest policy" }
        ) {
            if $0 == "base" { return nil }
            guard let id = Int64($0) else { throw ConfigError("--policy expects a model id or 'base', got '\($0)'") }
            return id
        },
        .flag(
            "--keep-reference", \.keepReference, "keep the run's reference; without it the SFT policy becomes the",
            "reference of the stages after it (ppo, dpo, grpo), as in InstructGPT"),
        LoRAOptions.group(\.lora) { c, t in c.frozenDType = t == .f32 ? nil : t },
        PrecisionOption.option(\.precision),
    ]

    /// LoRA trains at `LoRAOptions.learningRateFactor` times the learning rate unless --lr says
    /// otherwise; the lexicon's folder is made absolute so that a resumed run finds it from
    /// anywhere.
    public mutating func finish(given: GivenOptions) throws {
        if lora != nil && !given.has("--lr") { learningRate *= LoRAOptions.learningRateFactor }
        if scorer == .lexicon { lexicon = URL(fileURLWithPath: lexicon).standardizedFileURL.path }
        if from == .demonstrations || from == .rankings {
            for o in ["--scorer", "--lexicon", "--target-length", "--response-length", "--temperature", "--top-k", "--top-p"] where given.has(o) {
                throw ConfigError("\(o) applies to --from best-of N only")
            }
        }
    }

    /// Why these settings cannot train, or nil.
    public var validationError: String? {
        if epochs < 1 || batch < 1 { return "--epochs and --batch must be at least 1" }
        if !(learningRate > 0) || !learningRate.isFinite { return "--lr must be a positive number" }
        if let m = microBatch, m < 1 { return "--micro-batch must be at least 1" }
        if maxLength < 2 { return "--max-length must be at least 2" }
        if !(validationFraction > 0 && validationFraction < 1) { return "--val-fraction must be between 0 and 1 (exclusive)" }
        if !(maxGradNorm > 0) { return "--max-grad-norm must be positive" }
        if weightDecay < 0 { return "--weight-decay must not be negative" }
        if case .bestOf(let n) = from, n < 2 { return "--from best-of N needs N of at least 2" }
        if frozenDType == .bf16 && lora == nil {
            return "--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16"
        }
        return nil
    }
}
