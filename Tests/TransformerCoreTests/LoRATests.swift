import XCTest

@testable import TransformerCore

/// Low-rank adapters in the compute core, on every kernel path and architecture: gradients of A,
/// B and a scalar head against central finite differences with the base frozen (never written,
/// no gradient buffer); the adapted forward pass against the same model with the update merged
/// into its weights (a different computation); adapters switched off, or freshly initialised,
/// giving the base exactly; KV-cache decoding with adapters against the full forward pass.
final class LoRATests: EveryPathTestCase {
    static let configs = GradientCheckTests.configs.map(\.1)

    /// Adapters on every projection with A and B both random (B starts at zero in training,
    /// which would leave A's gradient zero and the check empty).
    func adapters(_ cfg: ModelConfig, rank: Int = 3, targets: [String]? = nil, seed: UInt64 = 1, scalarHead: Bool = false) throws -> LoRAAdapters {
        let lora = try LoRAAdapters(
            config: LoRAConfig(rank: rank, alpha: 5, targets: targets ?? LoRAConfig.allTargets(cfg.architecture)), model: cfg,
            scalarHead: scalarHead)
        var rng = SeededRandom(seed: seed)
        for i in 0..<lora.parameters.count { lora.parameters.pointer[i] = rng.normal() * 0.5 }
        return lora
    }

    func batch(_ cfg: ModelConfig) -> (TokenBatch, [Int32]) { gradientCheckBatch(vocab: cfg.vocabSize) }

    /// Central differences on a few elements of each A and B (the largest gradient and random
    /// others), and of the scalar head when there is one.
    func check(_ model: TransformerModel, _ lora: LoRAAdapters, h: Float = 1e-2, objective: () -> Double, analytic: () -> Void, line: UInt = #line) {
        let base = Array(UnsafeBufferPointer(start: model.parameters.pointer, count: model.layout.count))
        analytic()
        XCTAssertFalse(model.hasGradientBuffer, "a frozen base gets no gradient buffer", line: line)
        XCTAssertEqual(
            Array(UnsafeBufferPointer(start: model.parameters.pointer, count: model.layout.count)), base, "the base is never written", line: line)
        var rng = SeededRandom(seed: 5)
        func probe(_ p: UnsafeMutablePointer<Float>, _ g: Float, _ what: String) {
            assertFiniteDifference(p, analytic: g, "\(model.config.architecture) \(what)", h: h, objective: objective, line: line)
        }
        var checked = 0
        for t in lora.tensors {
            let count = t.shape[0] * t.shape[1]
            let g = Array(UnsafeBufferPointer(start: lora.gradients.pointer + t.offset, count: count))
            XCTAssertTrue(g.contains { $0 != 0 }, "\(t.name) has a gradient", line: line)
            var picks = [g.indices.max { abs(g[$0]) < abs(g[$1]) }!]
            for _ in 0..<2 { picks.append(rng.int(below: count)) }
            for i in picks { probe(lora.parameters.pointer + t.offset + i, g[i], "\(t.name)[\(i)]"); checked += 1 }
        }
        XCTAssertEqual(checked, lora.tensors.count * 3, line: line)
        if let head = lora.head, let g = lora.headGradient {
            let c = model.config.nEmbd
            for i in [0, c / 2, c - 1] { probe(head.baseAddress! + i, g[i], "score.weight[\(i)]") }
            probe(head.baseAddress! + c, g[c], "score.bias")
        }
    }

    /// `check` with the language-model loss of `b` as the objective.
    func checkLanguageModelLoss(
        _ model: TransformerModel, _ lora: LoRAAdapters, _ b: TokenBatch, _ targets: [Int32], _ acts: Activations,
        h: Float = 1e-2, line: UInt = #line
    ) {
        let loss = LanguageModelLoss(model: model, batch: b, targets: targets, acts: acts, zeroGradients: lora.zeroGradients)
        check(model, lora, h: h, objective: loss.value, analytic: loss.gradients, line: line)
    }

    func testAdapterGradientsWithAFrozenBase() throws {
        for cfg in Self.configs {
            try forEachPath {
                let model = randomModel(cfg, seed: 3, scale: 10)
                let lora = try adapters(cfg)
                model.lora = lora
                let (b, targets) = batch(cfg)
                let acts = Activations(config: cfg, batch: b.batch, length: b.length)
                checkLanguageModelLoss(model, lora, b, targets, acts)
            }
        }
    }

    /// Dropout on the adapters' input while training: the gradients of the masked computation
    /// (the same seed draws the same mask in the backward pass), about p of the inputs dropped,
    /// a new mask for a new seed, and none outside training.
    func testDropoutWhileTraining() throws {
        for cfg in Self.configs {
            try forEachPath {
                let model = randomModel(cfg, seed: 3, scale: 10)
                let lora = try adapters(cfg)
                let dropping = try LoRAAdapters(
                    config: LoRAConfig(rank: 3, alpha: 5, targets: LoRAConfig.allTargets(cfg.architecture), dropout: 0.3), model: cfg)
                dropping.parameters.pointer.update(from: lora.parameters.pointer, count: lora.parameters.count)
                let (b, targets) = batch(cfg)
                let acts = Activations(config: cfg, batch: b.batch, length: b.length)
                func logits(_ l: LoRAAdapters) -> [Float] { model.lora = l; model.forward(b, acts); return acts.logits.array }
                let plain = logits(lora)
                XCTAssertEqual(logits(dropping), plain, "no dropout outside training")
                dropping.training = true
                dropping.dropoutSeed = 41
                let masked = logits(dropping)
                XCTAssertGreaterThan(maxAbsDiff(masked, plain), 1e-3, "dropout changes the output")
                XCTAssertEqual(logits(dropping), masked, "one seed, one mask")
                dropping.dropoutSeed = 42
                XCTAssertGreaterThan(maxAbsDiff(logits(dropping), masked), 1e-3, "another seed, another mask")
                model.lora = dropping
                // Dropout's 1/(1−p) scaling makes the objective curve more at this model's scale;
                // a smaller step keeps the central difference accurate.
                checkLanguageModelLoss(model, dropping, b, targets, acts, h: 2e-3)
            }
        }
        // The fraction dropped: one adapter's mask over 200,000 inputs.
        let cfg = Self.configs[0]
        let lora = try LoRAAdapters(config: LoRAConfig(rank: 1, alpha: 1, targets: ["c_attn"], dropout: 0.3), model: cfg)
        lora.training = true
        lora.dropoutSeed = 7
        let n = 200_000 / cfg.nEmbd
        let ones = [Float](repeating: 1, count: n * cfg.nEmbd)
        // With A = 1 in one row and B = 1 in one column, h = Σ dropout(x) / (1−p)-scaled, so the
        // output counts the kept inputs.
        let a = lora.tensors[0], bt = lora.tensors[1]
        for i in 0..<cfg.nEmbd { lora.parameters.pointer[a.offset + i] = 1 }
        lora.parameters.pointer[bt.offset] = 1
        var out = [Float](repeating: 0, count: n * cfg.qkvWidth)
        ones.withUnsafeBufferPointer { x in
            out.withUnsafeMutableBufferPointer { o in lora.forward(layer: 0, site: .qkv, o.baseAddress!, ldOut: cfg.qkvWidth, x.baseAddress!, n: n) }
        }
        let kept = (0..<n).reduce(0.0) { $0 + Double(out[$1 * cfg.qkvWidth]) } * 0.7 // undo the 1/(1−p) scaling
        XCTAssertEqual(kept / Double(n * cfg.nEmbd), 0.7, accuracy: 0.005)
    }

    /// Batches large enough that the adapters' products use their own scratch, not the stack.
    func testLargeBatchGradientsAndForward() throws {
        let cfg = Self.configs[1]
        try forEachPath {
            let model = randomModel(cfg, seed: 3, scale: 10)
            let lora = try adapters(cfg, rank: 20)
            model.lora = lora
            var rng = SeededRandom(seed: 12)
            let b = TokenBatch(leftPadding: (0..<64).map { _ in randomTokens(8, vocab: cfg.vocabSize, rng: &rng) }, pad: 0)
            XCTAssertGreaterThan(b.tokens.count * 20, 8192)
            let targets = (0..<b.tokens.count).map { i in (i + 1) % b.length == 0 ? Int32(-1) : b.tokens[i + 1] }
            let acts = Activations(config: cfg, batch: b.batch, length: b.length)
            checkLanguageModelLoss(model, lora, b, targets, acts)
        }
    }

    func testAdapterAndHeadGradientsOfAScalarHeadModel() throws {
        for cfg in Self.configs {
            try forEachPath {
                let model = randomModel(cfg, seed: 4, scalarHead: true, scale: 10)
                // Some targets only: the others are plain frozen projections.
                let targets = cfg.architecture.isLlamaFamily ? ["q_proj", "v_proj", "down_proj"] : ["c_attn", "c_fc"]
                let (b, _) = batch(cfg)
                let acts = Activations(config: cfg, batch: b.batch, length: b.length)
                let objective = LastTokenObjective()
                // The adapters' own head (PEFT's modules_to_save): it replaces the model's while
                // they are on, and trains with them.
                /// The gradients of `adapters`, on the model, against finite differences.
                func checkAdapters(_ adapters: LoRAAdapters) {
                    model.lora = adapters
                    check(
                        model, adapters, objective: { objective.value(model, b, acts) },
                        analytic: {
                            model.forward(b, acts, computeLogits: false)
                            adapters.zeroGradients()
                            model.backward(b, acts, fromLogits: false, dValues: objective.dValues(b))
                        })
                }
                let lora = try adapters(cfg, rank: 2, targets: targets, scalarHead: true)
                checkAdapters(lora)
                lora.enabled = false
                let modelHead = objective.value(model, b, acts)
                model.lora = nil
                XCTAssertEqual(objective.value(model, b, acts), modelHead, "off, the model's own head and weights")
                // Adapters without a head over a scalar-head model: the model's head, frozen.
                checkAdapters(try adapters(cfg, rank: 2, targets: targets, seed: 2))
            }
        }
    }

    func testAdaptedForwardEqualsTheMergedModelAndOffEqualsTheBase() throws {
        for cfg in Self.architectureConfigs(layers: 2, embd: 48, ctx: 16, vocab: 61) {
            try forEachPath {
                let model = randomModel(cfg, seed: 7)
                var rng = SeededRandom(seed: 2)
                let b = TokenBatch(
                    leftPadding: [randomTokens(9, vocab: cfg.vocabSize, rng: &rng), randomTokens(5, vocab: cfg.vocabSize, rng: &rng)], pad: 0)
                let acts = Activations(config: cfg, batch: b.batch, length: b.length)
                model.forward(b, acts)
                let base = acts.logits.array

                // Freshly initialised (B = 0), and switched off: the base, bit for bit.
                let lora = try LoRAAdapters(config: LoRAConfig(rank: 4, alpha: 8, targets: LoRAConfig.allTargets(cfg.architecture)), model: cfg)
                lora.initialize(seed: 9)
                XCTAssertTrue(
                    lora.tensors.filter { $0.name.hasSuffix("lora_A.weight") }.allSatisfy { t in
                        let a = UnsafeBufferPointer(start: lora.parameters.pointer + t.offset, count: t.shape[0] * t.shape[1])
                        let bound = 1 / Float(t.shape[1]).squareRoot()
                        return a.allSatisfy { abs($0) <= bound } && a.contains { $0 != 0 }
                    }, "A is Kaiming-uniform in ±1/√in")
                model.lora = lora
                model.forward(b, acts)
                XCTAssertEqual(acts.logits.array, base, "B starts at zero")
                for i in 0..<lora.parameters.count { lora.parameters.pointer[i] = rng.normal() * 0.3 }
                lora.enabled = false
                model.forward(b, acts)
                XCTAssertEqual(acts.logits.array, base, "adapters off")

                // On: the same as the base with s·B·A added into its weights.
                lora.enabled = true
                model.forward(b, acts)
                let adapted = acts.logits.array
                XCTAssertGreaterThan(maxAbsDiff(adapted, base), 1e-2, "the adapters change the output")
                let merged = TransformerModel(config: cfg)
                merged.copyParameters(from: model)
                lora.merge(into: merged)
                merged.forward(b, acts)
                let mask = b.mask.flatMap { [UInt8](repeating: $0, count: cfg.vocabSize) }
                let real = { (x: [Float]) in zip(x, mask).filter { $0.1 == 1 }.map(\.0) }
                XCTAssertLessThan(maxAbsDiff(real(acts.logits.array), real(adapted)), 2e-4, "\(cfg.architecture)")

                // KV-cache decoding with the adapters: the logits of the full forward pass.
                let prompts = [randomTokens(5, vocab: cfg.vocabSize, rng: &rng), randomTokens(2, vocab: cfg.vocabSize, rng: &rng)]
                let steps = 4
                let fed = (0..<2).map { _ in randomTokens(steps, vocab: cfg.vocabSize, rng: &rng) }
                let gen = Generator(model: model)
                let cache = gen.prefill(prompts: prompts, pad: 0, extra: steps)
                for s in 0..<steps { gen.decode(cache, tokens: fed.map { $0[s] }, positions: prompts.map { Int32($0.count + s) }) }
                let decoded = Array(UnsafeBufferPointer(start: gen.logits, count: 2 * cfg.vocabSize))
                let full = TokenBatch(leftPadding: zip(prompts, fed).map { $0 + $1 }, pad: 0)
                let fa = Activations(config: cfg, batch: 2, length: full.length)
                model.forward(full, fa)
                for row in 0..<2 {
                    let t = full.length - 1, v = cfg.vocabSize
                    let last = Array(UnsafeBufferPointer(start: fa.logits.pointer + (row * full.length + t) * v, count: v))
                    XCTAssertLessThan(maxAbsDiff(Array(decoded[row * v..<(row + 1) * v]), last), 1e-4, "KV cache with adapters, row \(row)")
                }
            }
        }
    }

    func testTargetsAreCheckedAndNamedAsPEFTNamesThem() throws {
        let gpt2 = GradientCheckTests.configs[0].1, llama = GradientCheckTests.configs[1].1
        // GPT-2's c_proj is both attention and MLP output, as PEFT matches it.
        let g = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: ["c_proj"]), model: gpt2)
        XCTAssertEqual(
            g.adapters.map(\.module),
            ["transformer.h.0.attn.c_proj", "transformer.h.0.mlp.c_proj", "transformer.h.1.attn.c_proj", "transformer.h.1.mlp.c_proj"])
        let l = try LoRAAdapters(config: LoRAConfig(rank: 2, alpha: 4, targets: ["q_proj", "mlp.up_proj"]), model: llama)
        XCTAssertEqual(
            l.tensors.prefix(4).map(\.name),
            [
                "base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight",
                "base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight",
                "base_model.model.model.layers.0.mlp.up_proj.lora_A.weight",
                "base_model.model.model.layers.0.mlp.up_proj.lora_B.weight",
            ])
        XCTAssertEqual(l.tensors[0].shape, [2, llama.nEmbd])
        XCTAssertEqual(l.tensors[1].shape, [llama.qDim, 2])
        XCTAssertEqual(l.tensors[3].shape, [llama.intermediateSize, 2])
        XCTAssertEqual(l.config.scale, 2)
        for (targets, rank, needle) in [
            (["q_proj"], 2, "not a projection of a gpt2 block"), (["c_attn"], 0, "rank must be at least 1"),
            (["proj"], 2, "not a projection"),
        ] {
            XCTAssertThrowsError(try LoRAAdapters(config: LoRAConfig(rank: rank, alpha: 4, targets: targets), model: gpt2)) {
                XCTAssertTrue("\($0)".contains(needle), "\($0)")
            }
        }
    }
}
