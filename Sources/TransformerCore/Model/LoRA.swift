import Foundation

/// Where in a block a projection sits: its product, which a low-rank adapter adds to.
public enum ProjectionSite: Int, CaseIterable, Sendable {
    /// q|k|v (GPT-2's c_attn).
    case qkv
    /// The attention output (o_proj, attn.c_proj).
    case attentionOut
    /// gate|up (GPT-2's c_fc).
    case mlpIn
    /// The MLP output (down_proj, mlp.c_proj).
    case mlpOut
}

/// Low-rank adaptation (LoRA, Hu et al. 2021) as PEFT configures it: a rank, α (the update is
/// scaled by α/r), and the projections it adapts, named as PEFT's `target_modules` name them
/// (`q_proj`, `v_proj`, … for the Llama family; `c_attn`, `c_proj`, `c_fc` for GPT-2).
public struct LoRAConfig: Codable, Equatable, Sendable {
    public var rank: Int
    public var alpha: Float
    public var targets: [String]
    /// Dropout on the adapters' input while training (PEFT's `lora_dropout`), in [0, 1).
    public var dropout: Float

    /// Rank r, α, targets (`allTargets` for every attention and MLP projection of a block), and
    /// dropout (none by default).
    public init(rank: Int, alpha: Float, targets: [String], dropout: Float = 0) {
        self.rank = rank; self.alpha = alpha; self.targets = targets; self.dropout = dropout
    }

    /// This configuration with an empty target list read as every projection of `architecture`.
    public func resolved(for architecture: Architecture) -> LoRAConfig {
        var c = self
        if c.targets.isEmpty { c.targets = Self.allTargets(architecture) }
        return c
    }

    /// The scale of the low-rank update, α/r.
    public var scale: Float { alpha / Float(rank) }

    /// Every attention and MLP projection of a block, by PEFT's module names.
    public static func allTargets(_ architecture: Architecture) -> [String] {
        architecture.isLlamaFamily
            ? ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
            : ["c_attn", "c_proj", "c_fc"]
    }
}

/// The adapters of one model: for each adapted projection, A (r × in) and B (out × r) in one
/// contiguous buffer with PEFT's tensor names, their gradients, and the switch that turns them
/// off (the reference pass of PPO uses the same base weights with the adapters off).
public final class LoRAAdapters {
    /// One adapted projection.
    public struct Adapter: Sendable {
        /// PEFT's module name (`model.layers.0.self_attn.q_proj`, `transformer.h.0.attn.c_attn`).
        public let module: String
        public let layer: Int
        public let site: ProjectionSite
        /// Where its output lands in the site's fused product (q, k and v share one), and how
        /// wide it is.
        public let column: Int, width: Int
        /// Its input width.
        public let inputs: Int
        /// Offsets of A and B in `parameters` (and `gradients`).
        let a: Int, b: Int
        /// Its place in `adapters` (which draws its dropout mask).
        let index: Int
    }

    public let config: LoRAConfig
    /// The configuration of the model they adapt.
    public let modelConfig: ModelConfig
    public let adapters: [Adapter]
    /// A and B of every adapter, contiguous.
    public let parameters: FloatBuffer
    /// Their gradients (same layout); accumulated by `TransformerModel.backward`.
    public let gradients: FloatBuffer
    /// Where the adapters' own scalar head (`score.weight` then `score.bias`, n_embd + 1 floats)
    /// sits in `parameters` and `gradients`, when they have one. As PEFT's `modules_to_save`,
    /// it replaces the model's head while the adapters are enabled and trains with them (a
    /// reward model's head; a value model's head over the reward model's frozen trunk).
    public let headOffset: Int?
    /// Whether forward passes add the adapters' updates.
    public var enabled = true
    /// Whether dropout applies (set while training; never when sampling or scoring).
    public var training = false
    /// Draws the dropout masks: the same seed gives the same masks, so the backward pass of a
    /// forward pass sees its mask. Trainers change it every step.
    public var dropoutSeed: UInt64 = 0
    /// Adapters by layer and site.
    let bySite: [[[Adapter]]]
    /// Scratch for the products of training-sized batches (a fresh heap block per call would be
    /// fresh pages, zeroed by the kernel, every time), and its lock.
    private var scratch = FloatBuffer(count: 0)
    private let scratchLock = NSLock()

    /// Adapters for `model` as `config` says, with a scalar head of their own when `scalarHead`;
    /// all A, B and the head zero (call `initialize`, and set the head). Adapters of more than
    /// `maxFloats` floats are refused before anything is allocated (a file that declares them
    /// must hold them).
    public init(config: LoRAConfig, model: ModelConfig, scalarHead: Bool = false, maxFloats: Int = .max) throws {
        guard config.rank >= 1 else { throw FormatError("LoRA rank must be at least 1, got \(config.rank)") }
        guard config.alpha > 0, config.alpha.isFinite else { throw FormatError("LoRA alpha must be positive, got \(config.alpha)") }
        guard config.dropout >= 0, config.dropout < 1 else { throw FormatError("LoRA dropout must be in [0, 1), got \(config.dropout)") }
        self.config = config
        modelConfig = model
        let c = model.nEmbd, qd = model.qDim, kv = model.kvDim, inter = model.intermediateSize
        var known: [(suffix: String, site: ProjectionSite, column: Int, width: Int, inputs: Int)]
        if model.architecture.isLlamaFamily {
            known = [
                ("self_attn.q_proj", .qkv, 0, qd, c), ("self_attn.k_proj", .qkv, qd, kv, c), ("self_attn.v_proj", .qkv, qd + kv, kv, c),
                ("self_attn.o_proj", .attentionOut, 0, c, qd), ("mlp.gate_proj", .mlpIn, 0, inter, c), ("mlp.up_proj", .mlpIn, inter, inter, c),
                ("mlp.down_proj", .mlpOut, 0, c, inter),
            ]
        } else {
            known = [
                ("attn.c_attn", .qkv, 0, model.qkvWidth, c), ("attn.c_proj", .attentionOut, 0, c, c),
                ("mlp.c_fc", .mlpIn, 0, inter, c), ("mlp.c_proj", .mlpOut, 0, c, inter),
            ]
        }
        // PEFT matches a target name against the end of a module's name, at a dot.
        for t in config.targets where !known.contains(where: { ("." + $0.suffix).hasSuffix("." + t) }) {
            throw FormatError(
                "LoRA target \(t) is not a projection of a \(model.architecture.rawValue) block; use some of \(LoRAConfig.allTargets(model.architecture).joined(separator: ", "))"
            )
        }
        known = known.filter { k in config.targets.contains { ("." + k.suffix).hasSuffix("." + $0) } }
        guard !known.isEmpty else { throw FormatError("LoRA needs at least one target") }
        let prefix = model.architecture.isLlamaFamily ? "model.layers." : "transformer.h."
        var list: [Adapter] = [], offset = 0
        var sites = [[[Adapter]]](repeating: [[Adapter]](repeating: [], count: ProjectionSite.allCases.count), count: model.nLayer)
        for l in 0..<model.nLayer {
            for k in known {
                let a = offset, b = a + config.rank * k.inputs
                offset = b + k.width * config.rank
                let ad = Adapter(
                    module: "\(prefix)\(l).\(k.suffix)", layer: l, site: k.site, column: k.column, width: k.width, inputs: k.inputs, a: a, b: b,
                    index: list.count)
                list.append(ad)
                sites[l][k.site.rawValue].append(ad)
            }
        }
        adapters = list
        bySite = sites
        headOffset = scalarHead ? offset : nil
        if scalarHead { offset += c + 1 }
        guard offset <= maxFloats else {
            throw FormatError(
                "LoRA rank \(config.rank) on \(config.targets.joined(separator: ", ")) needs \(offset) floats, more than the \(maxFloats) its file holds"
            )
        }
        parameters = FloatBuffer(count: offset)
        gradients = FloatBuffer(count: offset)
    }

    /// The adapters' own scalar head: weight (n_embd) then bias.
    public var head: UnsafeMutableBufferPointer<Float>? {
        headOffset.map { UnsafeMutableBufferPointer(start: parameters.pointer + $0, count: modelConfig.nEmbd + 1) }
    }

    /// The gradient of `head`.
    public var headGradient: UnsafeMutableBufferPointer<Float>? {
        headOffset.map { UnsafeMutableBufferPointer(start: gradients.pointer + $0, count: modelConfig.nEmbd + 1) }
    }

    /// Every trained range of `parameters`: each A and B (decayed), and the head's weight
    /// (decayed) and bias (not), as the Hugging Face Trainer decays matrices only.
    public var trainedRanges: [(offset: Int, count: Int, decays: Bool)] {
        var r = tensors.map { ($0.offset, $0.shape[0] * $0.shape[1], true) }
        if let h = headOffset { r += [(h, modelConfig.nEmbd, true), (h + modelConfig.nEmbd, 1, false)] }
        return r
    }

    /// New adapters for `model` as `config` says (with a zero head of their own when
    /// `scalarHead`), initialised as PEFT does from `seed`.
    public convenience init(config: LoRAConfig, model: ModelConfig, scalarHead: Bool = false, seed: UInt64) throws {
        try self.init(config: config, model: model, scalarHead: scalarHead)
        initialize(seed: seed)
    }

    /// PEFT's initialisation: A Kaiming-uniform with a = √5 (uniform in ±1/√in), B zero, so the
    /// adapted model starts equal to the base. The head, if any, is left as it is.
    public func initialize(seed: UInt64) {
        defer { Gemm.weightsChanged(parameters.pointer, count: parameters.count) }
        var rng = SeededRandom(seed: seed)
        for t in tensors { (parameters.pointer + t.offset).update(repeating: 0, count: t.shape[0] * t.shape[1]) }
        for ad in adapters {
            let bound = 1 / Float(ad.inputs).squareRoot()
            let a = parameters.pointer + ad.a
            for i in 0..<(config.rank * ad.inputs) { a[i] = (rng.uniformFloat() * 2 - 1) * bound }
        }
    }

    /// Tensors with PEFT's names in `adapter_model.safetensors`
    /// (`base_model.model.MODULE.lora_A.weight`, `….lora_B.weight`), with their shapes and offsets.
    public var tensors: [(name: String, shape: [Int], offset: Int)] {
        adapters.flatMap { ad in
            [
                ("base_model.model.\(ad.module).lora_A.weight", [config.rank, ad.inputs], ad.a),
                ("base_model.model.\(ad.module).lora_B.weight", [ad.width, config.rank], ad.b),
            ]
        }
    }

    /// The A or B matrix called `name` (a name of `tensors`).
    public func tensor(_ name: String) -> UnsafeMutableBufferPointer<Float>? {
        guard let t = tensors.first(where: { $0.name == name }) else { return nil }
        return UnsafeMutableBufferPointer(start: parameters.pointer + t.offset, count: t.shape[0] * t.shape[1])
    }

    /// Sets the adapters' (and their head's) gradients to zero.
    public func zeroGradients() { gradients.zero() }

    /// out[:, column..<column+width] (row stride `ldOut`) += s · (inp · Aᵀ) · Bᵀ for each adapter
    /// at `site` of `layer`; inp is (n, inputs).
    func forward(layer: Int, site: ProjectionSite, _ out: UnsafeMutablePointer<Float>, ldOut: Int, _ inp: UnsafePointer<Float>, n: Int) {
        guard enabled else { return }
        let r = config.rank, drops = dropsInput
        for ad in bySite[layer][site.rawValue] {
            withScratch(n * r + (drops ? n * ad.inputs : 0)) { h in
                // x = dropout(inp); h (n, r) = s · x · Aᵀ
                let x = drops ? dropped(inp, ad, n, into: h + n * r) : inp
                Gemm.multiply(
                    m: n, n: r, k: ad.inputs, a: .rowMajor(x, columns: ad.inputs),
                    b: .transposed(parameters.pointer + ad.a, columns: ad.inputs), c: h, ldc: r, weight: true)
                scale(h, config.scale, n * r)
                // out[:, cols] += h · Bᵀ
                Gemm.multiply(
                    m: n, n: ad.width, k: r, a: .rowMajor(h, columns: r),
                    b: .transposed(parameters.pointer + ad.b, columns: r), c: out + ad.column, ldc: ldOut, accumulate: true, weight: true)
            }
        }
    }

    /// Backward of `forward`: from dout (rows of `ldOut`), accumulates dA and dB and adds the
    /// adapters' share to dinp (n, inputs).
    func backward(
        layer: Int, site: ProjectionSite, dinp: UnsafeMutablePointer<Float>?, _ dout: UnsafePointer<Float>, ldOut: Int,
        _ inp: UnsafePointer<Float>, n: Int
    ) {
        guard enabled else { return }
        let r = config.rank, drops = dropsInput
        for ad in bySite[layer][site.rawValue] {
            withScratch(2 * n * r + (drops ? 2 * n * ad.inputs : 0)) { h in
                let dh = h + n * r
                let a = parameters.pointer + ad.a, b = parameters.pointer + ad.b
                // x = dropout(inp) with the forward pass's mask; h = s · x · Aᵀ (recomputed rather
                // than kept from the forward pass)
                let x = drops ? dropped(inp, ad, n, into: dh + n * r) : inp
                Gemm.multiply(
                    m: n, n: r, k: ad.inputs, a: .rowMajor(x, columns: ad.inputs), b: .transposed(a, columns: ad.inputs), c: h, ldc: r, weight: true)
                scale(h, config.scale, n * r)
                // dB (width, r) += dout[:, cols]ᵀ · h
                Gemm.multiply(
                    m: ad.width, n: r, k: n, a: .transposed(dout + ad.column, columns: ldOut), b: .rowMajor(h, columns: r),
                    c: gradients.pointer + ad.b, ldc: r, accumulate: true)
                // dh (n, r) = s · dout[:, cols] · B
                Gemm.multiply(
                    m: n, n: r, k: ad.width, a: .rowMajor(dout + ad.column, columns: ldOut), b: .rowMajor(b, columns: r), c: dh, ldc: r, weight: true)
                scale(dh, config.scale, n * r)
                // dA (r, inputs) += dhᵀ · x
                Gemm.multiply(
                    m: r, n: ad.inputs, k: n, a: .transposed(dh, columns: r), b: .rowMajor(x, columns: ad.inputs),
                    c: gradients.pointer + ad.a, ldc: ad.inputs, accumulate: true)
                // dinp += dropout'(dh · A)
                if let dinp {
                    if drops {
                        let t = dh + n * r + n * ad.inputs
                        Gemm.multiply(
                            m: n, n: ad.inputs, k: r, a: .rowMajor(dh, columns: r), b: .rowMajor(a, columns: ad.inputs), c: t, ldc: ad.inputs,
                            weight: true)
                        addDropped(t, ad, n, into: dinp)
                    } else {
                        Gemm.multiply(
                            m: n, n: ad.inputs, k: r, a: .rowMajor(dh, columns: r), b: .rowMajor(a, columns: ad.inputs),
                            c: dinp, ldc: ad.inputs, accumulate: true, weight: true)
                    }
                }
            }
        }
    }

    /// Adds each adapter's update, (α/r)·B·A, into `model`'s weights: the merged model computes
    /// what the base with these adapters computes (as PEFT's `merge_and_unload`).
    public func merge(into model: TransformerModel) {
        precondition(model.config == modelConfig, "LoRA adapters made for another configuration")
        precondition(model.frozenDType == .f32, "LoRA merge: the model holds its projections in bfloat16")
        let cfg = modelConfig, r = config.rank
        // Weight arithmetic, not a pass of the model: single precision whatever `--precision` says.
        let precision = Kernels.precision
        Kernels.precision = .f32
        defer {
            Kernels.precision = precision
            model.weightsChanged()
        }
        for ad in adapters {
            let w = model.p.blocks[ad.layer]
            let (weight, outputs): (UnsafeMutablePointer<Float>, Int)
            switch ad.site {
            case .qkv: (weight, outputs) = (w.qkvw, cfg.qkvWidth)
            case .attentionOut: (weight, outputs) = (w.projw, cfg.nEmbd)
            case .mlpIn: (weight, outputs) = (w.fcw, cfg.mlpInWidth)
            case .mlpOut: (weight, outputs) = (w.fcprojw, cfg.nEmbd)
            }
            withUnsafeTemporaryAllocation(of: Float.self, capacity: ad.width * r) { buf in
                let sb = buf.baseAddress!
                sb.update(from: parameters.pointer + ad.b, count: ad.width * r)
                scale(sb, config.scale, ad.width * r)
                let a = parameters.pointer + ad.a
                if cfg.architecture.isLlamaFamily {
                    // [out, in]: rows column..<column+width += s·B·A
                    Gemm.multiply(
                        m: ad.width, n: ad.inputs, k: r, a: .rowMajor(sb, columns: r), b: .rowMajor(a, columns: ad.inputs),
                        c: weight + ad.column * ad.inputs, ldc: ad.inputs, accumulate: true)
                } else {
                    // Conv1D [in, out]: columns column..<column+width += (s·B·A)ᵀ
                    Gemm.multiply(
                        m: ad.inputs, n: ad.width, k: r, a: .transposed(a, columns: ad.inputs), b: .transposed(sb, columns: r),
                        c: weight + ad.column, ldc: outputs, accumulate: true)
                }
            }
        }
    }

    /// Whether this pass drops adapter inputs.
    private var dropsInput: Bool { training && config.dropout > 0 }

    /// Whether element `i` of adapter `ad`'s input survives dropout in this pass: a hash of the
    /// seed, the adapter and the element, compared with the drop probability (24-bit).
    @inline(__always)
    private func keeps(_ ad: Adapter, _ i: Int) -> Bool {
        var z = dropoutSeed &+ UInt64(ad.index) &* 0x9E37_79B9_7F4A_7C15 &+ UInt64(i) &* 0xD1B5_4A32_D192_ED03
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        z ^= z >> 31
        return Float(z >> 40) >= config.dropout * 16_777_216
    }

    /// out (n, inputs) = inp with dropped elements zero and kept ones scaled by 1/(1 − p).
    private func dropped(_ inp: UnsafePointer<Float>, _ ad: Adapter, _ n: Int, into out: UnsafeMutablePointer<Float>) -> UnsafePointer<Float> {
        let keep = 1 / (1 - config.dropout)
        for i in 0..<(n * ad.inputs) { out[i] = keeps(ad, i) ? inp[i] * keep : 0 }
        return UnsafePointer(out)
    }

    /// dinp += the gradient `t` through the same dropout.
    private func addDropped(_ t: UnsafePointer<Float>, _ ad: Adapter, _ n: Int, into dinp: UnsafeMutablePointer<Float>) {
        let keep = 1 / (1 - config.dropout)
        for i in 0..<(n * ad.inputs) where keeps(ad, i) { dinp[i] += t[i] * keep }
    }

    /// Runs `body` with `count` floats of scratch: on the stack when small (decoding, where row
    /// ranges of a batch run on several threads), else in the adapters' own buffer.
    private func withScratch(_ count: Int, _ body: (UnsafeMutablePointer<Float>) -> Void) {
        if count <= 8192 {
            withUnsafeTemporaryAllocation(of: Float.self, capacity: count) { body($0.baseAddress!) }
            return
        }
        scratchLock.lock()
        defer { scratchLock.unlock() }
        if scratch.count < count { scratch = FloatBuffer(count: count) }
        body(scratch.pointer)
    }

    private func scale(_ x: UnsafeMutablePointer<Float>, _ s: Float, _ count: Int) {
        if s != 1 { for i in 0..<count { x[i] *= s } }
    }
}
