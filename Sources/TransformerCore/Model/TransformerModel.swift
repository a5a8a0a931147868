/// A transformer (GPT-2 or a Llama-family variant): configuration, parameters in one contiguous
/// buffer, and (when training) a gradient buffer with the same layout.
public final class TransformerModel {
    /// Hyperparameters.
    public let config: ModelConfig
    /// Where each named tensor lives in `parameters` and `gradients`.
    public let layout: ParameterLayout
    /// All parameters, contiguous.
    public let parameters: FloatBuffer
    let p: ModelTensors
    /// Rotary cos/sin tables (Llama family).
    let rotary: RotaryTable?
    private var gradStorage: FloatBuffer?
    var g: ModelTensors?
    /// Low-rank adapters. While set, the base weights are frozen: forward passes add the
    /// adapters' updates (when enabled), and `backward` accumulates only the adapters' gradients
    /// (and their own scalar head's, if any), never touching `gradients`.
    public var lora: LoRAAdapters? {
        didSet {
            if let l = lora {
                precondition(l.modelConfig == config, "LoRA adapters made for another configuration")
                precondition(l.headOffset == nil || hasScalarHead, "LoRA adapters with a scalar head on a model without one")
            }
        }
    }
    /// Whether `parameters` belongs to another model too (see `init(sharingWeightsOf:)`).
    public let sharesWeights: Bool
    /// The bfloat16 projections, shared with every model over the same parameters.
    let weightStore: WeightStore
    /// Where a frozen model's backward pass writes the norm-weight gradients it does not keep.
    lazy var discard = FloatBuffer(count: 2 * config.nEmbd)

    /// A model with all parameters zero; call `initialize(seed:)` or load weights.
    public init(config: ModelConfig, scalarHead: Bool = false) {
        if let problem = config.validationError() { preconditionFailure("ModelConfig: \(problem)") }
        self.config = config
        layout = ParameterLayout(config: config, scalarHead: scalarHead)
        parameters = FloatBuffer(count: layout.count, hugePages: true)
        p = ModelTensors(parameters.pointer, layout, config)
        rotary = config.architecture.isLlamaFamily ? RotaryTable(config: config) : nil
        sharesWeights = false
        weightStore = WeightStore()
    }

    /// A second model over the same parameter buffer: no copy is made, and both read the same
    /// weights (PPO's policy and reference, one base with and without adapters; the reward
    /// model and the value model over its trunk). Give at most one of them adapters to train;
    /// neither may write the weights.
    public init(sharingWeightsOf other: TransformerModel) {
        config = other.config
        layout = other.layout
        parameters = other.parameters
        p = other.p
        rotary = other.rotary
        sharesWeights = true
        weightStore = other.weightStore
    }

    /// Whether the model has a scalar head (reward or value model).
    public var hasScalarHead: Bool { layout.hasScalarHead }

    /// GPT-2-style initialisation for either architecture: weights N(0, 0.02), the projections
    /// into the residual stream (c_proj, o_proj, down_proj) N(0, 0.02/√(2·n_layer)), norm gains 1,
    /// biases 0; a scalar head N(0, 1/√(n_embd+1)) with zero bias.
    public func initialize(seed: UInt64) {
        defer { weightsChanged() }
        var rng = SeededRandom(seed: seed)
        let residualStd = 0.02 / Float(2 * config.nLayer).squareRoot()
        for slot in layout.slots {
            let t = parameters.pointer + slot.offset
            let std: Float
            if slot.name.hasSuffix("ln_1.weight") || slot.name.hasSuffix("ln_2.weight") || slot.name == "ln_f.weight"
                || slot.name.hasSuffix("layernorm.weight") || slot.name == "model.norm.weight"
            {
                t.update(repeating: 1, count: slot.count); continue
            } else if slot.name == "score.weight" {
                std = 1 / Float(config.nEmbd + 1).squareRoot()
            } else if !slot.decays {
                t.update(repeating: 0, count: slot.count); continue
            } else if slot.name.hasSuffix("c_proj.weight") || slot.name.hasSuffix("o_proj.weight") || slot.name.hasSuffix("down_proj.weight") {
                std = residualStd
            } else {
                std = 0.02
            }
            for i in 0..<slot.count { t[i] = rng.normal() * std }
        }
    }

    /// The parameter tensor called `name` (Hugging Face naming).
    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let slot = layout[name] else { preconditionFailure("no parameter named \(name)") }
        precondition(holdsFloats(name), "\(name) is held in bfloat16; its single-precision values are gone")
        return UnsafeMutableBufferPointer(start: parameters.pointer + slot.offset, count: slot.count)
    }

    /// Gradients, same layout as `parameters`; allocated (zeroed) on first access.
    public var gradients: FloatBuffer {
        if let gs = gradStorage { return gs }
        let gs = FloatBuffer(count: layout.count, hugePages: true)
        gradStorage = gs
        g = ModelTensors(gs.pointer, layout, config)
        return gs
    }

    /// The gradient of the tensor called `name`.
    public func gradient(_ name: String) -> UnsafeMutableBufferPointer<Float> {
        guard let slot = layout[name] else { preconditionFailure("no parameter named \(name)") }
        return UnsafeMutableBufferPointer(start: gradients.pointer + slot.offset, count: slot.count)
    }

    /// Whether the base's gradient buffer exists (a frozen model's backward never makes it).
    var hasGradientBuffer: Bool { gradStorage != nil }

    /// Sets every gradient that `backward` accumulates to zero: the adapters' when the model has
    /// them, else the parameters' (gradients accumulate across `backward` calls).
    public func zeroGradients() { if let l = lora { l.zeroGradients() } else { gradients.zero() } }

    /// What training updates: the adapters (and their head) when the model has them, else every
    /// parameter.
    public var trainableParameters: FloatBuffer { lora?.parameters ?? parameters }

    /// The gradients of `trainableParameters`.
    public var trainableGradients: FloatBuffer { lora?.gradients ?? gradients }

    /// The scalar head in use: the adapters' own while they are enabled, else the model's.
    var scalarHead: (weight: UnsafeMutablePointer<Float>, bias: UnsafeMutablePointer<Float>)? {
        if let l = lora, l.enabled, let h = l.head { return (h.baseAddress!, h.baseAddress! + config.nEmbd) }
        guard let w = p.scoreW, let b = p.scoreB else { return nil }
        return (w, b)
    }

    /// Tells the bfloat16 products that this model's weights changed (their packed copies are
    /// made again when next used). Whatever writes `parameters` in place calls it.
    public func weightsChanged() {
        Gemm.weightsChanged(parameters.pointer, count: parameters.count)
    }

    /// Copies parameters from another model of the same configuration. When this model has a
    /// scalar head and `other` does not, the head is left as it is.
    public func copyParameters(from other: TransformerModel) {
        precondition(other.config == config, "copyParameters: configurations differ")
        precondition(!sharesWeights && frozenDType == .f32, "copyParameters: this model shares its weights or holds them in bfloat16")
        precondition(other.frozenDType == .f32, "copyParameters: the source holds its projections in bfloat16")
        defer { weightsChanged() }
        for slot in layout.slots {
            guard let src = other.layout[slot.name] else { continue }
            (parameters.pointer + slot.offset).update(from: other.parameters.pointer + src.offset, count: slot.count)
        }
    }
}
