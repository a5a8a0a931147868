/// One named tensor inside a contiguous parameter buffer.
public struct TensorSlot: Equatable, Sendable {
    /// Hugging Face name, e.g. `h.0.attn.c_attn.weight` (GPT-2) or `model.layers.0.self_attn.q_proj.weight`.
    public let name: String
    /// Shape in Hugging Face's layout (GPT-2's Conv1D weights are [in, out], Linear weights [out, in]).
    public let shape: [Int]
    /// Offset in floats from the start of the buffer: a multiple of 16, except for a tensor fused
    /// with the one before it (k and v after q, up after gate).
    public let offset: Int
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
    /// Whether AdamW applies weight decay: matrices yes; biases and LayerNorm gains no.
    public var decays: Bool { shape.count >= 2 }
}

/// Where every parameter of a model lives in its one contiguous buffer.
///
/// The same layout serves parameters, gradients and both AdamW moments, so an optimiser step is
/// a single loop over flat memory and a checkpoint is a mapping from names to slices.
public struct ParameterLayout: Sendable {
    /// Every tensor, in Hugging Face order.
    public let slots: [TensorSlot]
    /// Total floats, including alignment padding.
    public let count: Int
    /// Whether a scalar head (`score.weight`, `score.bias`) is present.
    public let hasScalarHead: Bool
    private let index: [String: Int]

    /// Lays out a model's parameters, optionally with a scalar head. GPT-2 tensors take
    /// Hugging Face's GPT-2 names (without the `transformer.` prefix); Llama-family tensors take
    /// the full names of `LlamaForCausalLM` / `Qwen2ForCausalLM` (`model.layers.0.…`, `lm_head.weight`).
    /// Tensors that one product reads together (q|k|v, their biases, gate|up) are adjacent with
    /// no padding, so each group is one [out, in] matrix.
    public init(config: ModelConfig, scalarHead: Bool) {
        var slots: [TensorSlot] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int], fusedWithNext: Bool = false) {
            slots.append(TensorSlot(name: name, shape: shape, offset: offset))
            let n = shape.reduce(1, *)
            offset += fusedWithNext ? n : (n + 15) / 16 * 16
        }
        let c = config.nEmbd
        if config.architecture.isLlamaFamily {
            let q = config.qDim, kv = config.kvDim, inter = config.intermediateSize
            add("model.embed_tokens.weight", [config.vocabSize, c])
            for l in 0..<config.nLayer {
                let h = "model.layers.\(l)."
                add(h + "input_layernorm.weight", [c])
                add(h + "self_attn.q_proj.weight", [q, c], fusedWithNext: true)
                add(h + "self_attn.k_proj.weight", [kv, c], fusedWithNext: true)
                add(h + "self_attn.v_proj.weight", [kv, c])
                if config.attentionBias {
                    add(h + "self_attn.q_proj.bias", [q], fusedWithNext: true)
                    add(h + "self_attn.k_proj.bias", [kv], fusedWithNext: true)
                    add(h + "self_attn.v_proj.bias", [kv])
                }
                add(h + "self_attn.o_proj.weight", [c, q])
                add(h + "post_attention_layernorm.weight", [c])
                add(h + "mlp.gate_proj.weight", [inter, c], fusedWithNext: true)
                add(h + "mlp.up_proj.weight", [inter, c])
                add(h + "mlp.down_proj.weight", [c, inter])
            }
            add("model.norm.weight", [c])
            // A scalar-head model (LlamaForSequenceClassification) has no LM head.
            if !config.tieWordEmbeddings && !scalarHead { add("lm_head.weight", [config.vocabSize, c]) }
        } else {
            add("wte.weight", [config.vocabSize, c])
            add("wpe.weight", [config.nCtx, c])
            for l in 0..<config.nLayer {
                add("h.\(l).ln_1.weight", [c]); add("h.\(l).ln_1.bias", [c])
                add("h.\(l).attn.c_attn.weight", [c, 3 * c]); add("h.\(l).attn.c_attn.bias", [3 * c])
                add("h.\(l).attn.c_proj.weight", [c, c]); add("h.\(l).attn.c_proj.bias", [c])
                add("h.\(l).ln_2.weight", [c]); add("h.\(l).ln_2.bias", [c])
                add("h.\(l).mlp.c_fc.weight", [c, 4 * c]); add("h.\(l).mlp.c_fc.bias", [4 * c])
                add("h.\(l).mlp.c_proj.weight", [4 * c, c]); add("h.\(l).mlp.c_proj.bias", [c])
            }
            add("ln_f.weight", [c]); add("ln_f.bias", [c])
        }
        if scalarHead { add("score.weight", [1, c]); add("score.bias", [1]) }
        self.slots = slots
        self.count = offset
        self.hasScalarHead = scalarHead
        var index: [String: Int] = [:]
        for (i, s) in slots.enumerated() { index[s.name] = i }
        self.index = index
    }

    /// The slot of a named tensor.
    public subscript(name: String) -> TensorSlot? { index[name].map { slots[$0] } }
}

/// Pointers to the tensors of one block inside some buffer laid out by `ParameterLayout`.
/// GPT-2: every tensor. Llama family: `qkvw` is q|k|v [out, in], `fcw` gate|up, `fcprojw` down;
/// no LayerNorm biases or projection biases (`qkvb` only for Qwen2).
struct BlockTensors {
    var ln1w, qkvw, projw, ln2w, fcw, fcprojw: UnsafeMutablePointer<Float>
    var ln1b, qkvb, projb, ln2b, fcb, fcprojb: UnsafeMutablePointer<Float>?
}

/// Pointers to every tensor of a model inside one buffer (parameters or gradients).
struct ModelTensors {
    var wte, lnfw: UnsafeMutablePointer<Float>
    var wpe, lnfb: UnsafeMutablePointer<Float>?
    /// The output head: the token embedding when tied, else `lm_head.weight`. (A scalar-head
    /// model of an untied config has no LM head; its logits, never used, read the embedding.)
    var head: UnsafeMutablePointer<Float>
    var scoreW, scoreB: UnsafeMutablePointer<Float>?
    var blocks: [BlockTensors]

    init(_ base: UnsafeMutablePointer<Float>, _ layout: ParameterLayout, _ config: ModelConfig) {
        func p(_ n: String) -> UnsafeMutablePointer<Float> { base + layout[n]!.offset }
        func o(_ n: String) -> UnsafeMutablePointer<Float>? { layout[n].map { base + $0.offset } }
        scoreW = o("score.weight"); scoreB = o("score.bias")
        if config.architecture.isLlamaFamily {
            wte = p("model.embed_tokens.weight"); lnfw = p("model.norm.weight"); wpe = nil; lnfb = nil
            head = o("lm_head.weight") ?? wte
            blocks = (0..<config.nLayer).map { l in
                let h = "model.layers.\(l)."
                return BlockTensors(
                    ln1w: p(h + "input_layernorm.weight"), qkvw: p(h + "self_attn.q_proj.weight"),
                    projw: p(h + "self_attn.o_proj.weight"), ln2w: p(h + "post_attention_layernorm.weight"),
                    fcw: p(h + "mlp.gate_proj.weight"), fcprojw: p(h + "mlp.down_proj.weight"),
                    ln1b: nil, qkvb: o(h + "self_attn.q_proj.bias"), projb: nil, ln2b: nil, fcb: nil, fcprojb: nil)
            }
        } else {
            wte = p("wte.weight"); wpe = p("wpe.weight"); lnfw = p("ln_f.weight"); lnfb = p("ln_f.bias")
            head = wte
            blocks = (0..<config.nLayer).map { l in
                let h = "h.\(l)."
                return BlockTensors(
                    ln1w: p(h + "ln_1.weight"), qkvw: p(h + "attn.c_attn.weight"),
                    projw: p(h + "attn.c_proj.weight"), ln2w: p(h + "ln_2.weight"),
                    fcw: p(h + "mlp.c_fc.weight"), fcprojw: p(h + "mlp.c_proj.weight"),
                    ln1b: p(h + "ln_1.bias"), qkvb: p(h + "attn.c_attn.bias"), projb: p(h + "attn.c_proj.bias"),
                    ln2b: p(h + "ln_2.bias"), fcb: p(h + "mlp.c_fc.bias"), fcprojb: p(h + "mlp.c_proj.bias"))
            }
        }
    }
}
