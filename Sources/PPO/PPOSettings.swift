import TransformerCore
/// Every hyperparameter of `rlhf ppo` (stored with the stage run, and reused on --resume).
public struct PPOSettings: Codable, Equatable, Sendable {
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

    public init() {}

    /// A problem with the settings, for the user.
    public func validationError() -> String? {
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
        if frozenDType == .bf16 && lora == nil { return "--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16" }
        return nil
    }
}
