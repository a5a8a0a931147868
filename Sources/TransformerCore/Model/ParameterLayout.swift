/// One named tensor inside a contiguous parameter buffer.
public struct TensorSlot: Equatable, Sendable {
    /// Hugging Face GPT-2 name, e.g. `h.0.attn.c_attn.weight`.
    public let name: String
    /// Shape in Hugging Face's layout (Conv1D weights are [in, out]).
    public let shape: [Int]
    /// Offset in floats from the start of the buffer (a multiple of 16).
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

    /// Lays out GPT-2 parameters, optionally with a scalar head.
    public init(config: ModelConfig, scalarHead: Bool) {
        var slots: [TensorSlot] = []
        var offset = 0
        func add(_ name: String, _ shape: [Int]) {
            slots.append(TensorSlot(name: name, shape: shape, offset: offset))
            offset += (shape.reduce(1, *) + 15) / 16 * 16
        }
        let c = config.nEmbd
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
struct BlockTensors {
    var ln1w, ln1b, qkvw, qkvb, projw, projb, ln2w, ln2b, fcw, fcb, fcprojw, fcprojb: UnsafeMutablePointer<Float>
}

/// Pointers to every tensor of a model inside one buffer (parameters or gradients).
struct ModelTensors {
    var wte, wpe, lnfw, lnfb: UnsafeMutablePointer<Float>
    var scoreW, scoreB: UnsafeMutablePointer<Float>?
    var blocks: [BlockTensors]

    init(_ base: UnsafeMutablePointer<Float>, _ layout: ParameterLayout, _ config: ModelConfig) {
        func p(_ n: String) -> UnsafeMutablePointer<Float> { base + layout[n]!.offset }
        wte = p("wte.weight"); wpe = p("wpe.weight"); lnfw = p("ln_f.weight"); lnfb = p("ln_f.bias")
        scoreW = layout.hasScalarHead ? p("score.weight") : nil
        scoreB = layout.hasScalarHead ? p("score.bias") : nil
        blocks = (0..<config.nLayer).map { l in
            let h = "h.\(l)."
            return BlockTensors(ln1w: p(h + "ln_1.weight"), ln1b: p(h + "ln_1.bias"),
                                qkvw: p(h + "attn.c_attn.weight"), qkvb: p(h + "attn.c_attn.bias"),
                                projw: p(h + "attn.c_proj.weight"), projb: p(h + "attn.c_proj.bias"),
                                ln2w: p(h + "ln_2.weight"), ln2b: p(h + "ln_2.bias"),
                                fcw: p(h + "mlp.c_fc.weight"), fcb: p(h + "mlp.c_fc.bias"),
                                fcprojw: p(h + "mlp.c_proj.weight"), fcprojb: p(h + "mlp.c_proj.bias"))
        }
    }
}
