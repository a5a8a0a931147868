import StageKit
import TransformerCore

/// Every hyperparameter of `rlhf ppo`: its defaults, its command-line options and their help, and
/// its validation. Stored with the stage run and reused on `--resume`.
public struct PPOConfig: StageConfig, Equatable {
    public var iterations = 20
    /// Prompts (and so sequences) per iteration.
    public var batch = 64
    public var responseLength = 48
    public var temperature: Float = 0.7
    /// Score of a completion without EOS; nil turns the penalty off.
    public var missingEOSPenalty: Float? = -1
    /// β, fixed or the starting value of the adaptive controller.
    public var klCoef: Float = 0.05
    /// Target KL for the adaptive controller; nil keeps β fixed.
    public var targetKL: Double?
    public var klHorizon: Double = 10_000
    public var gamma: Float = 1
    public var lambda: Float = 0.95
    public var ppoEpochs = 4
    public var minibatches = 4
    public var clipRange: Float = 0.2
    public var clipRangeValue: Float = 0.2
    public var valueCoef: Float = 0.1
    public var entropyCoef: Float = 0.01
    public var learningRate: Float = 1e-5
    public var valueLearningRate: Float?
    public var maxGradNorm: Float = 1
    public var adamEps: Float = 1e-5
    public var whitenRewards = false
    public var seed: UInt64 = 0
    public var saveEvery = 10
    /// Completions kept per iteration, with their scores, for inspection.
    public var samplesPerIteration = 4
    /// LoRA: the policy trains adapters over its frozen starting weights, which the reference
    /// shares, and the value model trains adapters and a head over the reward model's frozen
    /// trunk, which the reward shares. nil trains every weight of both.
    public var lora: LoRAConfig?
    /// With LoRA, the float type the frozen weights (the shared policy/reference base, the reward
    /// model's trunk) are held in; nil is f32.
    public var frozenDType: FrozenDType?
    /// The arithmetic of the matrix products (`--precision`); f32 in settings stored before it.
    public var precision = Precision.f32

    public init() {}

    public static let options: [ConfigOption<PPOConfig>] = [
        .int("--iterations", \.iterations, range: 1...1_000_000, "PPO iterations"),
        .int("--batch", \.batch, range: 1...100_000, "prompts per iteration"),
        .int("--response-length", \.responseLength, range: 1...100_000, "new tokens at most"),
        .number("--temperature", \.temperature, "sampling temperature, also used for log-probabilities"),
        .value(
            "--missing-eos-penalty", "X", \.missingEOSPenalty, "score of a completion without EOS, or 'none'",
            shown: { $0.map(formatDefault) ?? "none" }
        ) {
            if $0 == "none" { return nil }
            guard let x = Float($0), x.isFinite else { throw ConfigError("--missing-eos-penalty expects a number or 'none', got '\($0)'") }
            return x
        },
        .number("--kl-coef", \.klCoef, "β, fixed or the start of the adaptive controller"),
        .value("--target-kl", "X", \.targetKL, "adapt β towards this KL (default: β stays fixed)", shown: { _ in nil }) {
            guard let x = Double($0), x > 0 else { throw ConfigError("--target-kl expects a positive number") }
            return x
        },
        .number(
            "--kl-horizon", \.klHorizon, "horizon of the adaptive controller", valid: { $0 > 0 }, invalid: "--kl-horizon expects a positive number"),
        .number("--gamma", \.gamma, "GAE discount γ"),
        .number("--lambda", \.lambda, "GAE λ"),
        .int("--ppo-epochs", \.ppoEpochs, range: 1...1000, "passes over each batch"),
        .int("--minibatches", \.minibatches, range: 1...100_000, "minibatches per pass"),
        .number("--clip-range", \.clipRange, "policy ratio clip ε"),
        .number("--clip-range-value", \.clipRangeValue, "value clip ε_v"),
        .number("--vf-coef", \.valueCoef, "c_v"),
        .number("--ent-coef", \.entropyCoef, "c_ent"),
        .number("--lr", \.learningRate, "policy learning rate"),
        .value("--value-lr", "X", \.valueLearningRate, "value learning rate", shown: { _ in "same as --lr" }) {
            Optional(try parseNumber("--value-lr", $0) as Float)
        },
        .number("--max-grad-norm", \.maxGradNorm, "gradient clipping"),
        .number("--adam-eps", \.adamEps, "AdamW epsilon"),
        .flag("--whiten-rewards", \.whitenRewards, "whiten the per-token rewards before GAE"),
        .int("--save-every", \.saveEvery, range: 1...1_000_000, "checkpoint interval in iterations"),
        .int("--samples", \.samplesPerIteration, range: 0...1000, "completions kept per iteration for inspection"),
        .seed(\.seed, "seed"),
        LoRAOptions.group(\.lora, dropout: false) { c, t in c.frozenDType = t == .f32 ? nil : t },
        PrecisionOption.option(\.precision),
    ]

    /// LoRA trains at `LoRAOptions.learningRateFactor` times the full learning rate unless --lr
    /// says otherwise.
    public mutating func finish(given: GivenOptions) throws {
        if lora != nil && !given.has("--lr") { learningRate *= LoRAOptions.learningRateFactor }
    }

    /// A problem with the settings, for the user.
    public var validationError: String? {
        if iterations < 1 { return "--iterations must be at least 1" }
        if batch < 1 { return "--batch must be at least 1" }
        if minibatches < 1 || batch % minibatches != 0 { return "--batch (\(batch)) must be a multiple of --minibatches (\(minibatches))" }
        if responseLength < 1 { return "--response-length must be at least 1" }
        if !(temperature > 0) { return "--temperature must be positive" }
        if klCoef < 0 { return "--kl-coef must not be negative" }
        if let t = targetKL, !(t > 0) { return "--target-kl must be positive" }
        if !(lambda >= 0 && lambda <= 1) || !(gamma >= 0 && gamma <= 1) { return "--gamma and --lambda must be in [0, 1]" }
        if !(clipRange > 0) || !(clipRangeValue > 0) { return "clip ranges must be positive" }
        if !(learningRate > 0) { return "--lr must be positive" }
        if saveEvery < 1 { return "--save-every must be at least 1" }
        if let l = lora, l.dropout > 0 { return "--lora-dropout is not used by PPO, which trains without dropout (as TRL does); leave it out" }
        if frozenDType == .bf16 && lora == nil {
            return "--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16"
        }
        return nil
    }
}
