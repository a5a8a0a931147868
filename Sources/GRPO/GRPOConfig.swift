import Foundation
import StageKit
import TransformerCore

/// How a completion's reward becomes its advantage within its group of K.
public enum GRPOAdvantage: String, Codable, Sendable, CaseIterable {
    /// GRPO: the reward minus the group's mean, divided by a standard deviation (`RewardScaling`).
    case group
    /// RLOO: the reward minus the mean of the other K − 1 of its group.
    case rloo
}

/// The standard deviation an advantage is divided by (TRL's `scale_rewards`).
public enum RewardScaling: String, Codable, Sendable, CaseIterable {
    /// The group's (unbiased) standard deviation.
    case group
    /// The whole batch's.
    case batch
    /// None: the centred reward is the advantage (Dr. GRPO).
    case none
}

/// How the per-token losses of a batch are summed into one loss: TRL's `loss_type`.
public enum GRPOLossType: String, Codable, Sendable, CaseIterable {
    /// Each completion's mean over its tokens, averaged over the completions.
    case grpo
    /// Every token of each micro-batch over the micro-batch's token count, averaged over the
    /// micro-batches.
    case bnpo
    /// Every token over (completions × --response-length), a constant (Dr. GRPO).
    case drGRPO = "dr_grpo"
    /// Every token over the whole batch's token count (DAPO; TRL's default).
    case dapo
}

/// One source of reward and its weight in the sum: `rm:1`, `cmd:0.5`, `lexicon:1`, `length:0.1`.
public struct RewardTerm: Codable, Sendable, Equatable {
    /// The sources: the run's reward model, the reward program, and the simulated labelers'
    /// scores.
    public static let sources = ["rm", "cmd", "lexicon", "length"]
    /// One of `sources`.
    public var source: String
    /// Its weight.
    public var weight: Double

    /// `source` with `weight`.
    public init(_ source: String, _ weight: Double) {
        self.source = source
        self.weight = weight
    }

    /// `--reward`'s list: `NAME[:WEIGHT],…`, a name without a weight weighing 1.
    public static func parse(_ s: String) throws -> [RewardTerm] {
        let items = s.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !items.isEmpty else { throw ConfigError("--reward needs at least one source (\(sources.joined(separator: ", ")))") }
        var out: [RewardTerm] = []
        for item in items {
            let parts = item.split(separator: ":", maxSplits: 1).map(String.init)
            let name = parts[0]
            guard sources.contains(name) else {
                throw ConfigError("--reward: unknown source '\(name)' (choose from \(sources.joined(separator: ", ")))")
            }
            guard !out.contains(where: { $0.source == name }) else { throw ConfigError("--reward names '\(name)' twice") }
            let w: Double = parts.count > 1 ? try parseNumber("--reward \(name)", parts[1]) : 1
            out.append(RewardTerm(name, w))
        }
        return out
    }

    /// The list as `--reward` writes it.
    public static func describe(_ terms: [RewardTerm]) -> String {
        terms.map { "\($0.source):\(formatDefault($0.weight))" }.joined(separator: ",")
    }
}

/// Every setting of `rlhf grpo`: its defaults, its command-line options and their help, and its
/// validation. Stored with the stage run and reused on `--resume`. The names follow TRL's
/// `GRPOConfig` where it has the setting.
public struct GRPOConfig: StageConfig, Equatable {
    /// Generations (each followed by `numIterations` optimiser steps).
    public var iterations = 20
    /// Prompts per iteration.
    public var batch = 8
    /// Completions sampled per prompt (TRL's `num_generations`).
    public var group = 8
    /// New tokens at most (TRL's `max_completion_length`).
    public var responseLength = 48
    /// Sampling temperature, also the temperature of the log-probabilities.
    public var temperature: Float = 0.7
    public var advantage = GRPOAdvantage.group
    public var scaleRewards = RewardScaling.group
    /// The ratio's lower clip ε (and the upper one unless `epsilonHigh`).
    public var epsilon: Float = 0.2
    /// DAPO's clip-higher: the upper clip; nil is `epsilon`.
    public var epsilonHigh: Float?
    /// μ: optimiser steps per generation.
    public var numIterations = 1
    public var loss = GRPOLossType.dapo
    /// β of the k3 KL penalty to the reference; 0 loads no reference and runs no reference pass.
    public var beta: Float = 0
    /// Leave completions that hit --response-length out of the loss.
    public var maskTruncated = false
    /// Sequences per forward/backward pass (gradient accumulation); nil is the largest divisor of
    /// batch × group up to 16.
    public var microBatch: Int?
    public var learningRate: Float = 1e-5
    public var maxGradNorm: Float = 1
    public var adamEps: Float = 1e-8
    public var seed: UInt64 = 0
    public var saveEvery = 10
    /// Completions kept per iteration, with their rewards, for inspection.
    public var samplesPerIteration = 4
    /// The reward: a weighted sum of sources.
    public var rewards = [RewardTerm("rm", 1)]
    /// The reward program (`cmd`), run through `/bin/sh -c`.
    public var rewardCommand: String?
    /// Seconds the reward program may take for one iteration's completions.
    public var rewardTimeout: Double = 60
    /// The lexicon of the `lexicon` source (an absolute path once parsed).
    public var lexicon = "labels/lexicon"
    /// The `length` source's best length in words.
    public var targetLength = 30
    /// LoRA: the policy trains adapters over its frozen starting weights, which the reference
    /// shares. nil trains every weight.
    public var lora: LoRAConfig?
    /// With LoRA, the float type the frozen weights are held in; nil is f32.
    public var frozenDType: FrozenDType?
    /// The model to train (nil: the run's latest policy).
    public var policyModel: Int64?
    /// The arithmetic of the matrix products (`--precision`); f32 in settings stored before it.
    public var precision = Precision.f32

    public init() {}

    /// The upper clip.
    public var epsilonHighOrLow: Float { epsilonHigh ?? epsilon }
    /// Completions per iteration.
    public var completions: Int { batch * group }
    /// The micro-batch in use.
    public var rowsPerPass: Int {
        if let m = microBatch { return m }
        return (1...min(16, completions)).last { completions % $0 == 0 }!
    }
    /// Whether the reward sums the named source.
    public func uses(_ source: String) -> Bool { rewards.contains { $0.source == source } }

    static func choice<E: RawRepresentable & CaseIterable>(
        _ name: String, _ key: WritableKeyPath<GRPOConfig, E>, _ help: String...
    ) -> ConfigOption<GRPOConfig> where E.RawValue == String {
        let names = E.allCases.map(\.rawValue)
        return ConfigOption(
            rows: [("\(name) \(names.joined(separator: "|"))", help)], valued: [name], shownDefault: { $0[keyPath: key].rawValue },
            apply: { c, given in
                guard let s = given.values[name] else { return }
                guard let v = E(rawValue: s) else { throw ConfigError("\(name) must be \(names.joined(separator: ", ")), got '\(s)'") }
                c[keyPath: key] = v
            })
    }

    public static let options: [ConfigOption<GRPOConfig>] = [
        .int("--iterations", \.iterations, range: 1...1_000_000, "generations, each followed by μ optimiser steps"),
        .int("--batch", \.batch, range: 1...100_000, "prompts per iteration"),
        .int("--group", \.group, range: 2...4096, "completions sampled per prompt (K)", placeholder: "K"),
        .int("--response-length", \.responseLength, range: 1...100_000, "new tokens at most"),
        .number(
            "--temperature", \.temperature, "sampling temperature, also used for log-probabilities", valid: { $0 > 0 },
            invalid: "--temperature expects a positive number"),
        choice("--advantage", \.advantage, "group: GRPO's (r − group mean)/std; rloo: r − the mean of the other K − 1"),
        choice(
            "--scale-rewards", \.scaleRewards, "the std the advantage is divided by (default: group for --advantage",
            "group, none for rloo)"),
        .number("--epsilon", \.epsilon, "lower clip of the ratio, 1 − ε", valid: { $0 > 0 && $0 < 1 }, invalid: "--epsilon must be in (0, 1)"),
        .value("--epsilon-high", "X", \.epsilonHigh, "upper clip of the ratio, 1 + ε_high (DAPO's clip-higher)", shown: { _ in "--epsilon" }) {
            Optional(try parseNumber("--epsilon-high", $0, valid: { (x: Float) in x > 0 }, invalid: "--epsilon-high must be positive"))
        },
        .int("--num-iterations", \.numIterations, range: 1...1000, "μ: optimiser steps on each generation's completions", placeholder: "MU"),
        .value("--loss", "L", \.loss, "grpo, bnpo, dr_grpo or dapo: how token losses are summed (TRL's loss_type)", shown: { $0.rawValue }) {
            guard let v = GRPOLossType(rawValue: $0) else { throw ConfigError("--loss must be grpo, bnpo, dr_grpo or dapo, got '\($0)'") }
            return v
        },
        .number(
            "--beta", \.beta, "β of the k3 KL penalty to the reference (0: no reference pass)", valid: { $0 >= 0 },
            invalid: "--beta must not be negative"),
        .flag("--mask-truncated", \.maskTruncated, "leave completions that reach --response-length out of the loss"),
        .value(
            "--micro-batch", "N", \.microBatch, "completions per forward/backward pass (gradient accumulation)",
            shown: { _ in "≤ 16 dividing batch × group" }
        ) {
            Optional(try parseInt("--micro-batch", $0, range: 1...100_000))
        },
        .number("--lr", \.learningRate, "learning rate (linear decay to 0)", valid: { $0 > 0 }, invalid: "--lr must be positive"),
        .number("--max-grad-norm", \.maxGradNorm, "gradient clipping"),
        .number("--adam-eps", \.adamEps, "AdamW epsilon"),
        .value(
            "--reward", "LIST", \.rewards, "the reward: a weighted sum of rm (the run's reward model), cmd (the",
            "--reward-cmd program), lexicon and length (the simulated labelers'",
            "scores), as NAME:WEIGHT,…", shown: { RewardTerm.describe($0) }
        ) { try RewardTerm.parse($0) },
        .value("--reward-cmd", "CMD", \.rewardCommand, "the reward program: JSON lines in, one {\"reward\": x} per line out", shown: { _ in nil }) {
            $0
        },
        .number(
            "--reward-timeout", \.rewardTimeout, "seconds the reward program may take per iteration", placeholder: "S", valid: { $0 > 0 },
            invalid: "--reward-timeout must be positive"),
        .value("--lexicon", "DIR", \.lexicon, "the word lists of the lexicon reward") { $0 },
        .int("--target-length", \.targetLength, range: 1...100_000, "the length reward's best length, in words"),
        .int("--save-every", \.saveEvery, range: 1...1_000_000, "checkpoint interval in iterations"),
        .int("--samples", \.samplesPerIteration, range: 0...100_000, "completions kept per iteration for inspection"),
        .seed(\.seed, "seed"),
        // 'base' is resolved by the command, which knows the run.
        .value(
            "--policy", "ID|base", \.policyModel, "the model to train; base: the run's base model, to run GRPO",
            "beside PPO or DPO from the same start", shown: { _ in "the run's latest policy" }
        ) {
            if $0 == "base" { return nil }
            guard let id = Int64($0) else { throw ConfigError("--policy expects a model id or 'base', got '\($0)'") }
            return id
        },
        LoRAOptions.group(\.lora, dropout: false) { c, t in c.frozenDType = t == .f32 ? nil : t },
        PrecisionOption.option(\.precision),
    ]

    /// RLOO's advantage is unscaled unless --scale-rewards says otherwise; --reward-cmd alone
    /// makes the program the reward; LoRA trains at `LoRAOptions.learningRateFactor` times the
    /// learning rate unless --lr says otherwise; the lexicon's folder is made absolute so that a
    /// resumed run finds it from anywhere.
    public mutating func finish(given: GivenOptions) throws {
        if advantage == .rloo && !given.has("--scale-rewards") { scaleRewards = .none }
        if given.has("--reward-cmd") && !given.has("--reward") { rewards = [RewardTerm("cmd", 1)] }
        if lora != nil && !given.has("--lr") { learningRate *= LoRAOptions.learningRateFactor }
        if uses("lexicon") { lexicon = URL(fileURLWithPath: lexicon).standardizedFileURL.path }
    }

    /// A problem with the settings, for the user.
    public var validationError: String? {
        if iterations < 1 || batch < 1 { return "--iterations and --batch must be at least 1" }
        if group < 2 { return "--group must be at least 2: the advantage compares completions of one prompt" }
        if responseLength < 1 { return "--response-length must be at least 1" }
        if !(temperature > 0) { return "--temperature must be positive" }
        if !(epsilon > 0 && epsilon < 1) || !(epsilonHighOrLow > 0) { return "--epsilon must be in (0, 1) and --epsilon-high positive" }
        if numIterations < 1 { return "--num-iterations must be at least 1" }
        if beta < 0 { return "--beta must not be negative" }
        if let m = microBatch, m < 1 || completions % m != 0 {
            return "--micro-batch (\(m)) must divide the completions per iteration, --batch × --group = \(completions)"
        }
        if !(learningRate > 0) { return "--lr must be positive" }
        if rewards.isEmpty { return "--reward needs at least one source" }
        if uses("cmd") && (rewardCommand ?? "").trimmingCharacters(in: .whitespaces).isEmpty {
            return "--reward cmd needs --reward-cmd \"PROGRAM ARGS\""
        }
        if rewardCommand != nil && !uses("cmd") { return "--reward-cmd is given but --reward does not list cmd" }
        if !(rewardTimeout > 0) { return "--reward-timeout must be positive" }
        if saveEvery < 1 { return "--save-every must be at least 1" }
        if let l = lora, l.dropout > 0 {
            return "--lora-dropout is not used by GRPO, which trains without dropout (the ratio of the first step must be exactly 1); leave it out"
        }
        if frozenDType == .bf16 && lora == nil {
            return "--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16"
        }
        return nil
    }
}
