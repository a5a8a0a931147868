/// Hyperparameters of a GPT-2 model. Field names follow Hugging Face's `config.json`.
public struct ModelConfig: Codable, Equatable, Sendable {
    /// Number of transformer blocks.
    public var nLayer: Int
    /// Number of attention heads; must divide `nEmbd`.
    public var nHead: Int
    /// Width of the residual stream.
    public var nEmbd: Int
    /// Maximum sequence length (rows of the position embedding).
    public var nCtx: Int
    /// Vocabulary size (rows of the token embedding).
    public var vocabSize: Int
    /// LayerNorm epsilon.
    public var layerNormEpsilon: Float

    /// A configuration; `nEmbd` must be divisible by `nHead`.
    public init(nLayer: Int, nHead: Int, nEmbd: Int, nCtx: Int, vocabSize: Int, layerNormEpsilon: Float = 1e-5) {
        self.nLayer = nLayer; self.nHead = nHead; self.nEmbd = nEmbd
        self.nCtx = nCtx; self.vocabSize = vocabSize; self.layerNormEpsilon = layerNormEpsilon
    }

    enum CodingKeys: String, CodingKey {
        case nLayer = "n_layer", nHead = "n_head", nEmbd = "n_embd", nCtx = "n_positions"
        case vocabSize = "vocab_size", layerNormEpsilon = "layer_norm_epsilon"
    }

    /// Checks the invariants the kernels rely on; returns a message describing the first problem.
    public func validationError() -> String? {
        if nLayer < 1 { return "n_layer must be at least 1 (got \(nLayer))" }
        if nHead < 1 || nEmbd < 1 { return "n_head and n_embd must be positive" }
        if nEmbd % nHead != 0 { return "n_embd (\(nEmbd)) must be divisible by n_head (\(nHead))" }
        if nCtx < 1 || vocabSize < 1 { return "n_positions and vocab_size must be positive" }
        if nLayer > 1024 || nEmbd > 65536 || nCtx > 1 << 20 || vocabSize > 1 << 24 { return "configuration is implausibly large" }
        return nil
    }

    /// Head size `nEmbd / nHead`.
    public var headSize: Int { nEmbd / nHead }

    /// The bench configurations S, M and L (L is GPT-2 small).
    public static func preset(_ name: String) -> ModelConfig? {
        switch name.uppercased() {
        case "S": return ModelConfig(nLayer: 4, nHead: 4, nEmbd: 128, nCtx: 128, vocabSize: 512)
        case "M": return ModelConfig(nLayer: 6, nHead: 6, nEmbd: 384, nCtx: 256, vocabSize: 8192)
        case "L": return ModelConfig(nLayer: 12, nHead: 12, nEmbd: 768, nCtx: 1024, vocabSize: 50257)
        default: return nil
        }
    }
}
