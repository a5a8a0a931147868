import XCTest

@testable import TransformerCore

/// Frozen projections held in bfloat16 (`--frozen-dtype bf16`), on every kernel path and
/// architecture. The reference is the same model held in single precision after its projections
/// were rounded to bfloat16 (`BFloat16(_:)`, checked against the definition in GemmTests): the
/// two compute the same function, one through the bfloat16 kernels, one through the float ones.
final class FrozenBF16Tests: EveryPathTestCase {
    static let configs = architectureConfigs(layers: 2, embd: 48, ctx: 40, vocab: 61)

    /// (reference, held in bfloat16): the same random weights; the second rounds its projections
    /// as it takes them into bfloat16, the first has them rounded here, with `BFloat16(_:)`.
    func pair(_ cfg: ModelConfig, scalarHead: Bool = false) -> (TransformerModel, TransformerModel) {
        let reference = randomModel(cfg, seed: 11, scalarHead: scalarHead, scale: 4)
        let half = TransformerModel(config: cfg, scalarHead: scalarHead)
        half.copyParameters(from: reference)
        half.holdProjectionsInBFloat16()
        var changed = 0
        for l in 0..<cfg.nLayer {
            for (_, names) in reference.projectionSlots(layer: l) {
                for n in names {
                    let t = reference.tensor(n)
                    for i in t.indices { let r = BFloat16(t[i]).float; changed += r != t[i] ? 1 : 0; t[i] = r }
                }
            }
        }
        XCTAssertGreaterThan(changed, 0, "the weights are not all representable in bfloat16 already")
        return (reference, half)
    }

    /// Adapters (random A and B, and a head when asked) and an identical copy.
    func adapterPair(_ cfg: ModelConfig, scalarHead: Bool) throws -> (LoRAAdapters, LoRAAdapters) {
        let lc = LoRAConfig(rank: 3, alpha: 6, targets: LoRAConfig.allTargets(cfg.architecture))
        let a = try LoRAAdapters(config: lc, model: cfg, scalarHead: scalarHead)
        let b = try LoRAAdapters(config: lc, model: cfg, scalarHead: scalarHead)
        var rng = SeededRandom(seed: 4)
        for i in 0..<a.parameters.count { a.parameters.pointer[i] = rng.normal() * 0.3 }
        b.parameters.pointer.update(from: a.parameters.pointer, count: a.parameters.count)
        return (a, b)
    }

    /// Forward outputs and the adapters' gradients (language-model loss, or the sum of the
    /// scalar outputs) over a batch of 3 × 14 rows, which takes the packing path of the products.
    func testForwardAndAdapterGradientsMatchTheRoundedModel() throws {
        for cfg in Self.configs {
            for scalarHead in [false, true] {
                try forEachPath {
                    let (reference, half) = pair(cfg, scalarHead: scalarHead)
                    let (la, lb) = try adapterPair(cfg, scalarHead: scalarHead)
                    reference.lora = la
                    half.lora = lb
                    var rng = SeededRandom(seed: 9)
                    let b = TokenBatch(leftPadding: (0..<3).map { _ in randomTokens(14, vocab: cfg.vocabSize, rng: &rng) }, pad: 0)
                    let targets = randomTokens(b.batch * b.length, vocab: cfg.vocabSize, rng: &rng)
                    var outputs: [[Float]] = [], gradients: [[Float]] = []
                    for model in [reference, half] {
                        let acts = Activations(config: cfg, batch: b.batch, length: b.length)
                        model.forward(b, acts)
                        model.zeroGradients()
                        if scalarHead {
                            outputs.append(acts.values.array)
                            let weights = (0..<b.batch * b.length).map { Float($0 % 7) - 3 }
                            model.backward(b, acts, fromLogits: false, dValues: weights)
                        } else {
                            outputs.append(acts.logits.array)
                            _ = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
                            model.backward(b, acts, fromLogits: true)
                        }
                        gradients.append(model.lora!.gradients.array)
                    }
                    let what = "\(cfg.architecture) scalar head \(scalarHead)"
                    XCTAssertLessThan(maxAbsDiff(outputs[0], outputs[1]), 1e-4 * max(1, outputs[0].map(abs).max()!), what)
                    XCTAssertLessThan(maxAbsDiff(gradients[0], gradients[1]), 1e-4 * max(1, gradients[0].map(abs).max()!), what)
                    XCTAssertTrue(gradients[1].contains { $0 != 0 }, what)
                    XCTAssertFalse(half.hasGradientBuffer, "the frozen base gets no gradient buffer")
                }
            }
        }
    }

    /// KV-cache decoding (the decode-sized kernels, which widen B as they stream it) against
    /// the reference model's, and against the bfloat16 model's own full forward pass.
    func testKVCacheDecodingMatchesTheRoundedModelAndTheFullForward() throws {
        for cfg in Self.configs {
            try forEachPath {
                let (reference, half) = pair(cfg)
                let (la, lb) = try adapterPair(cfg, scalarHead: false)
                reference.lora = la
                half.lora = lb
                var rng = SeededRandom(seed: 12)
                // 6 sequences: the 4-row decode tiles with a half-full second pass.
                let prompts = (0..<6).map { i in randomTokens(2 + i, vocab: cfg.vocabSize, rng: &rng) }
                let steps = 5
                let fed = prompts.map { _ in randomTokens(steps, vocab: cfg.vocabSize, rng: &rng) }
                var decoded: [[Float]] = []
                for model in [reference, half] {
                    let gen = Generator(model: model)
                    let cache = gen.prefill(prompts: prompts, pad: 0, extra: steps)
                    for s in 0..<steps { gen.decode(cache, tokens: fed.map { $0[s] }, positions: prompts.map { Int32($0.count + s) }) }
                    decoded.append(Array(UnsafeBufferPointer(start: gen.logits, count: prompts.count * cfg.vocabSize)))
                }
                XCTAssertLessThan(maxAbsDiff(decoded[0], decoded[1]), 1e-4 * max(1, decoded[0].map(abs).max()!), "\(cfg.architecture) decode")
                let full = TokenBatch(leftPadding: zip(prompts, fed).map { $0 + $1 }, pad: 0)
                let acts = Activations(config: cfg, batch: full.batch, length: full.length)
                half.forward(full, acts)
                let v = cfg.vocabSize
                for row in 0..<prompts.count {
                    let last = Array(UnsafeBufferPointer(start: acts.logits.pointer + (row * full.length + full.length - 1) * v, count: v))
                    XCTAssertLessThan(
                        maxAbsDiff(Array(decoded[1][row * v..<(row + 1) * v]), last), 1e-4 * max(1, last.map(abs).max()!),
                        "\(cfg.architecture) KV cache vs full forward, row \(row)")
                }
            }
        }
    }

    /// Holding the projections in bfloat16 shrinks the model, reaches the models that share its
    /// weights, leaves nothing readable behind, and refuses to be saved as full weights.
    func testSharingMemoryAndRefusals() throws {
        let cfg = ModelConfig(nLayer: 2, nHead: 4, nEmbd: 256, nCtx: 32, vocabSize: 64)
        let reward = randomModel(cfg, seed: 3, scalarHead: true)
        let value = TransformerModel(sharingWeightsOf: reward)
        let before = reward.weightBytes
        XCTAssertEqual(before, 4 * reward.layout.count)
        XCTAssertEqual(value.frozenDType, .f32)
        reward.holdProjectionsInBFloat16()
        XCTAssertEqual(value.frozenDType, .bf16, "a model sharing the weights holds them the same way")
        // The projections are 12·C² of the 12·C² + (64 + 32 + 13)·C + … floats: bfloat16 halves them,
        // less the page-sized ends that could not be given back.
        let projections = 2 * 12 * cfg.nEmbd * cfg.nEmbd
        XCTAssertLessThan(reward.weightBytes, before - 4 * projections / 2 + 4 * 8 * 4096, "\(reward.weightBytes) of \(before)")
        XCTAssertGreaterThanOrEqual(reward.weightBytes, before - 4 * projections / 2)
        for l in 0..<cfg.nLayer {
            for (_, names) in reward.projectionSlots(layer: l) {
                for n in names {
                    let s = reward.layout[n]!
                    let old = UnsafeBufferPointer(start: reward.parameters.pointer + s.offset, count: s.count)
                    XCTAssertTrue(old.allSatisfy { $0 == 0 || $0.isNaN }, "\(n): the single-precision copy is gone")
                }
            }
        }
        let tok = try ModelFolder.load(fixtureURL("hf/tiny-gpt2")).tokenizer
        let dir = temporaryFolder().appendingPathComponent("saved")
        XCTAssertThrowsError(try ModelFolder.save(reward, tokenizer: tok, to: dir)) { e in
            XCTAssertTrue("\(e)".contains("bfloat16"), "\(e)")
        }
        XCTAssertFalse(FileManager.default.fileExists(atPath: dir.path), "nothing written")
    }
}
