import Foundation

/// The architecture variants the core computes.
public enum Architecture: String, Sendable, CaseIterable {
    /// GPT-2: pre-LayerNorm blocks, learned positions, tanh GELU, tied embeddings, Conv1D [in, out]
    /// weights.
    case gpt2
    /// Llama (SmolLM2, Llama 3.x): RMSNorm, rotary positions, SwiGLU, grouped-query attention,
    /// Linear [out, in] weights, tied or untied output embeddings.
    case llama
    /// Qwen2 (Qwen2.5): Llama with q/k/v biases.
    case qwen2

    /// Whether this is a Llama-family variant (RMSNorm, RoPE, SwiGLU, Linear layout).
    public var isLlamaFamily: Bool { self != .gpt2 }
}

/// The `llama3` rotary scaling of Llama 3.1/3.2: long wavelengths are slowed by `factor`, short
/// ones kept, and the band between interpolated.
public struct RopeScaling: Equatable, Sendable {
    public var factor: Double
    public var lowFreqFactor: Double
    public var highFreqFactor: Double
    public var originalMaxPositions: Int

    public init(factor: Double, lowFreqFactor: Double, highFreqFactor: Double, originalMaxPositions: Int) {
        self.factor = factor; self.lowFreqFactor = lowFreqFactor
        self.highFreqFactor = highFreqFactor; self.originalMaxPositions = originalMaxPositions
    }
}

/// Hyperparameters of a model: GPT-2 or a Llama-family variant.
public struct ModelConfig: Equatable, Sendable {
    /// Which variant.
    public var architecture: Architecture
    /// Number of transformer blocks.
    public var nLayer: Int
    /// Number of attention (query) heads.
    public var nHead: Int
    /// Width of the residual stream.
    public var nEmbd: Int
    /// Maximum sequence length (GPT-2: rows of the position embedding; Llama:
    /// `max_position_embeddings`).
    public var nCtx: Int
    /// Vocabulary size (rows of the token embedding).
    public var vocabSize: Int
    /// LayerNorm epsilon (GPT-2) or RMSNorm epsilon (`rms_norm_eps`).
    public var layerNormEpsilon: Float
    /// Key/value heads (grouped-query attention); divides `nHead`. GPT-2: `nHead`.
    public var nKVHead: Int
    /// Size of one head. GPT-2: `nEmbd / nHead`; Llama: `head_dim` when given.
    public var headDim: Int
    /// Width of the MLP's hidden layer (GPT-2: 4·n_embd).
    public var intermediateSize: Int
    /// Rotary base (`rope_theta`).
    public var ropeTheta: Double
    /// `llama3` rotary scaling, when the config has it.
    public var ropeScaling: RopeScaling?
    /// Biases on the q, k and v projections (Qwen2). GPT-2 always has them.
    public var attentionBias: Bool
    /// Whether the output head is the token embedding (GPT-2 always).
    public var tieWordEmbeddings: Bool

    /// A GPT-2 configuration; `nEmbd` must be divisible by `nHead`.
    public init(nLayer: Int, nHead: Int, nEmbd: Int, nCtx: Int, vocabSize: Int, layerNormEpsilon: Float = 1e-5) {
        architecture = .gpt2
        self.nLayer = nLayer; self.nHead = nHead; self.nEmbd = nEmbd
        self.nCtx = nCtx; self.vocabSize = vocabSize; self.layerNormEpsilon = layerNormEpsilon
        nKVHead = nHead; headDim = nHead > 0 ? nEmbd / nHead : 0; intermediateSize = 4 * nEmbd
        ropeTheta = 10000; ropeScaling = nil; attentionBias = true; tieWordEmbeddings = true
    }

    /// A Llama-family configuration (`.llama` or `.qwen2`; Qwen2 has q/k/v biases).
    public init(
        llama architecture: Architecture = .llama, nLayer: Int, nHead: Int, nKVHead: Int, nEmbd: Int,
        headDim: Int? = nil, intermediateSize: Int, nCtx: Int, vocabSize: Int, rmsNormEpsilon: Float = 1e-5,
        ropeTheta: Double = 10000, ropeScaling: RopeScaling? = nil, tieWordEmbeddings: Bool
    ) {
        precondition(architecture.isLlamaFamily, "init(llama:) builds Llama-family configurations")
        self.architecture = architecture
        self.nLayer = nLayer; self.nHead = nHead; self.nEmbd = nEmbd
        self.nCtx = nCtx; self.vocabSize = vocabSize; layerNormEpsilon = rmsNormEpsilon
        self.nKVHead = nKVHead; self.headDim = headDim ?? (nHead > 0 ? nEmbd / nHead : 0)
        self.intermediateSize = intermediateSize
        self.ropeTheta = ropeTheta; self.ropeScaling = ropeScaling
        attentionBias = architecture == .qwen2
        self.tieWordEmbeddings = tieWordEmbeddings
    }

    /// Checks the invariants the kernels rely on; returns a message describing the first problem.
    public func validationError() -> String? {
        if nLayer < 1 { return "n_layer must be at least 1 (got \(nLayer))" }
        if nHead < 1 || nEmbd < 1 { return "n_head and n_embd must be positive" }
        if nCtx < 1 || vocabSize < 1 { return "n_positions and vocab_size must be positive" }
        if nLayer > 1024 || nEmbd > 65536 || nCtx > 1 << 20 || vocabSize > 1 << 24 || nHead > 1024 { return "configuration is implausibly large" }
        if !architecture.isLlamaFamily {
            if nEmbd % nHead != 0 { return "n_embd (\(nEmbd)) must be divisible by n_head (\(nHead))" }
            return nil
        }
        if nKVHead < 1 || nHead % nKVHead != 0 {
            return "num_attention_heads (\(nHead)) must be a multiple of num_key_value_heads (\(nKVHead))"
        }
        if headDim < 2 || headDim % 2 != 0 || headDim > 1024 { return "head_dim must be even and between 2 and 1024 (got \(headDim))" }
        if intermediateSize < 1 || intermediateSize > 1 << 20 { return "intermediate_size must be between 1 and 2^20 (got \(intermediateSize))" }
        if !(ropeTheta > 1) || !ropeTheta.isFinite { return "rope_theta must be a finite number above 1 (got \(ropeTheta))" }
        if let s = ropeScaling {
            if !(s.factor >= 1) || !(s.lowFreqFactor > 0) || !(s.highFreqFactor > s.lowFreqFactor) || s.originalMaxPositions < 1
                || !s.factor.isFinite || !s.highFreqFactor.isFinite
            {
                return "rope_scaling (llama3) needs factor ≥ 1, 0 < low_freq_factor < high_freq_factor and original_max_position_embeddings ≥ 1"
            }
        }
        if !(layerNormEpsilon >= 0) { return "rms_norm_eps must not be negative" }
        return nil
    }

    /// Head size.
    public var headSize: Int { headDim }
    /// Width of all query heads together (`nHead · headDim`; GPT-2: `nEmbd`).
    public var qDim: Int { nHead * headDim }
    /// Width of all key (or value) heads together.
    public var kvDim: Int { nKVHead * headDim }
    /// Width of the fused q|k|v projection's output.
    public var qkvWidth: Int { qDim + 2 * kvDim }
    /// Width of the MLP's first product: the hidden layer (GPT-2), or gate|up (SwiGLU).
    public var mlpInWidth: Int { architecture.isLlamaFamily ? 2 * intermediateSize : intermediateSize }

    /// The bench configurations S, M and L (L is GPT-2 small), and the Llama-family shapes
    /// `smollm-135m` (SmolLM2-135M), `qwen-0.5b` (Qwen2.5-0.5B), and `llama-s` and `llama-m`
    /// (Llama counterparts of S and M, grouped-query attention with 2 key/value heads, for tests
    /// and `rlhf pretrain --arch llama`).
    public static func preset(_ name: String) -> ModelConfig? {
        switch name.lowercased() {
        case "s": return ModelConfig(nLayer: 4, nHead: 4, nEmbd: 128, nCtx: 128, vocabSize: 512)
        case "m": return ModelConfig(nLayer: 6, nHead: 6, nEmbd: 384, nCtx: 256, vocabSize: 8192)
        case "l": return ModelConfig(nLayer: 12, nHead: 12, nEmbd: 768, nCtx: 1024, vocabSize: 50257)
        case "llama-m":
            return ModelConfig(
                llama: .llama, nLayer: 6, nHead: 6, nKVHead: 2, nEmbd: 384, intermediateSize: 1024,
                nCtx: 256, vocabSize: 8192, ropeTheta: 10000, tieWordEmbeddings: true)
        case "llama-s":
            return ModelConfig(
                llama: .llama, nLayer: 4, nHead: 4, nKVHead: 2, nEmbd: 128, intermediateSize: 352,
                nCtx: 128, vocabSize: 512, ropeTheta: 10000, tieWordEmbeddings: true)
        case "smollm-135m":
            return ModelConfig(
                llama: .llama, nLayer: 30, nHead: 9, nKVHead: 3, nEmbd: 576, intermediateSize: 1536,
                nCtx: 2048, vocabSize: 49152, ropeTheta: 100000, tieWordEmbeddings: true)
        case "qwen-0.5b":
            return ModelConfig(
                llama: .qwen2, nLayer: 24, nHead: 14, nKVHead: 2, nEmbd: 896, intermediateSize: 4864,
                nCtx: 32768, vocabSize: 151936, rmsNormEpsilon: 1e-6, ropeTheta: 1000000, tieWordEmbeddings: true)
        default: return nil
        }
    }

    /// The names `preset` knows, for error messages.
    public static let presetNames = ["S", "M", "L", "llama-s", "llama-m", "smollm-135m", "qwen-0.5b"]

    /// Rotary inverse frequencies (headDim/2 of them), with the `llama3` scaling applied, computed
    /// in double precision.
    public var ropeInverseFrequencies: [Double] {
        let half = headDim / 2
        var inv = (0..<half).map { i in 1 / pow(ropeTheta, Double(2 * i) / Double(headDim)) }
        if let s = ropeScaling {
            let old = Double(s.originalMaxPositions)
            let lowWavelen = old / s.lowFreqFactor, highWavelen = old / s.highFreqFactor
            inv = inv.map { f in
                let wavelen = 2 * Double.pi / f
                if wavelen < highWavelen { return f }
                if wavelen > lowWavelen { return f / s.factor }
                let smooth = (old / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor)
                return (1 - smooth) * f / s.factor + smooth * f
            }
        }
        return inv
    }
}

/// The configuration as a JSON object in Hugging Face's `config.json` key names (what the run
/// database records beside each model). GPT-2 keeps its own names; the Llama family writes
/// `model_type` and the Llama keys.
extension ModelConfig: Codable {
    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case nLayer = "n_layer", nHead = "n_head", nEmbd = "n_embd", nCtx = "n_positions"
        case vocabSize = "vocab_size", layerNormEpsilon = "layer_norm_epsilon"
        case hiddenSize = "hidden_size", layers = "num_hidden_layers", heads = "num_attention_heads"
        case kvHeads = "num_key_value_heads", headDim = "head_dim", intermediateSize = "intermediate_size"
        case maxPositions = "max_position_embeddings", rmsNormEps = "rms_norm_eps", ropeTheta = "rope_theta"
        case tie = "tie_word_embeddings", ropeScaling = "rope_scaling"
    }

    struct ScalingKeys: Codable {
        var rope_type: String
        var factor: Double, low_freq_factor: Double, high_freq_factor: Double
        var original_max_position_embeddings: Int
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        let type = try c.decodeIfPresent(String.self, forKey: .modelType) ?? "gpt2"
        guard let arch = Architecture(rawValue: type) else {
            throw DecodingError.dataCorruptedError(forKey: .modelType, in: c, debugDescription: "model_type \(type) is not supported")
        }
        if !arch.isLlamaFamily {
            self.init(
                nLayer: try c.decode(Int.self, forKey: .nLayer), nHead: try c.decode(Int.self, forKey: .nHead),
                nEmbd: try c.decode(Int.self, forKey: .nEmbd), nCtx: try c.decode(Int.self, forKey: .nCtx),
                vocabSize: try c.decode(Int.self, forKey: .vocabSize),
                layerNormEpsilon: try c.decodeIfPresent(Float.self, forKey: .layerNormEpsilon) ?? 1e-5)
            return
        }
        let s = try c.decodeIfPresent(ScalingKeys.self, forKey: .ropeScaling)
        let heads = try c.decode(Int.self, forKey: .heads)
        self.init(
            llama: arch, nLayer: try c.decode(Int.self, forKey: .layers), nHead: heads,
            nKVHead: try c.decodeIfPresent(Int.self, forKey: .kvHeads) ?? heads,
            nEmbd: try c.decode(Int.self, forKey: .hiddenSize), headDim: try c.decodeIfPresent(Int.self, forKey: .headDim),
            intermediateSize: try c.decode(Int.self, forKey: .intermediateSize),
            nCtx: try c.decode(Int.self, forKey: .maxPositions), vocabSize: try c.decode(Int.self, forKey: .vocabSize),
            rmsNormEpsilon: try c.decodeIfPresent(Float.self, forKey: .rmsNormEps) ?? 1e-5,
            ropeTheta: try c.decodeIfPresent(Double.self, forKey: .ropeTheta) ?? 10000,
            ropeScaling: s.map {
                RopeScaling(
                    factor: $0.factor, lowFreqFactor: $0.low_freq_factor, highFreqFactor: $0.high_freq_factor,
                    originalMaxPositions: $0.original_max_position_embeddings)
            },
            tieWordEmbeddings: try c.decodeIfPresent(Bool.self, forKey: .tie) ?? false)
    }

    public func encode(to encoder: Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(architecture.rawValue, forKey: .modelType)
        try c.encode(vocabSize, forKey: .vocabSize)
        guard architecture.isLlamaFamily else {
            try c.encode(nLayer, forKey: .nLayer); try c.encode(nHead, forKey: .nHead)
            try c.encode(nEmbd, forKey: .nEmbd); try c.encode(nCtx, forKey: .nCtx)
            try c.encode(layerNormEpsilon, forKey: .layerNormEpsilon)
            return
        }
        try c.encode(nLayer, forKey: .layers); try c.encode(nHead, forKey: .heads); try c.encode(nKVHead, forKey: .kvHeads)
        try c.encode(nEmbd, forKey: .hiddenSize); try c.encode(headDim, forKey: .headDim)
        try c.encode(intermediateSize, forKey: .intermediateSize); try c.encode(nCtx, forKey: .maxPositions)
        try c.encode(layerNormEpsilon, forKey: .rmsNormEps); try c.encode(ropeTheta, forKey: .ropeTheta)
        try c.encode(tieWordEmbeddings, forKey: .tie)
        if let s = ropeScaling {
            try c.encode(
                ScalingKeys(
                    rope_type: "llama3", factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor,
                    original_max_position_embeddings: s.originalMaxPositions), forKey: .ropeScaling)
        }
    }
}
