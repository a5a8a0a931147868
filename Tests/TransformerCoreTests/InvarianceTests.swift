import XCTest

@testable import TransformerCore

/// KV-cache decoding equals the full forward pass; left padding does not change real positions.
/// Each holds for GPT-2 and the Llama-family variants (`architectureConfigs`).
final class InvarianceTests: EveryPathTestCase {
    let configs = EveryPathTestCase.architectureConfigs()

    /// Forward-only activation sets (one layer's buffers shared by every layer) give exactly the
    /// logits and scalar-head values of the full sets.
    func testInferenceOnlyActivationsMatchFull() {
        forEachArchitecture(configs) { cfg in
            let model = TransformerModel(config: cfg, scalarHead: true)
            model.initialize(seed: 31)
            var rng = SeededRandom(seed: 32)
            let batch = TokenBatch(
                leftPadding: [randomTokens(11, vocab: cfg.vocabSize, rng: &rng), randomTokens(6, vocab: cfg.vocabSize, rng: &rng)], pad: 3)
            let full = Activations(config: cfg, batch: batch.batch, length: batch.length)
            let lean = Activations(config: cfg, batch: batch.batch, length: batch.length, inferenceOnly: true)
            model.forward(batch, full)
            model.forward(batch, lean)
            XCTAssertEqual(full.logits.array, lean.logits.array)
            XCTAssertEqual(full.values.array, lean.values.array)
            XCTAssertLessThan(lean.floatCount, full.floatCount / 2)
        }
    }

    /// A logit window (the positions that predict a completion) gives those positions the
    /// log-probabilities, entropies and parameter gradients of the full logits, from the head's
    /// products over the window's rows only; asking for a target outside it is refused.
    func testLogitWindowMatchesTheFullLogits() {
        forEachArchitecture(configs) { cfg in
            let model = randomModel(cfg, seed: 35, scale: 2)
            var rng = SeededRandom(seed: 36)
            let layout = PromptResponseBatch(
                prompts: [5, 2, 8].map { randomTokens($0, vocab: cfg.vocabSize, rng: &rng) },
                responses: [6, 3, 0].map { randomTokens($0, vocab: cfg.vocabSize, rng: &rng) }, width: 6, pad: 1)
            let rows = [0, 1, 2], batch = layout.batch(rows), targets = layout.targets(rows)
            let dLogProb = targets.map { $0 >= 0 ? rng.uniformFloat() - 0.5 : 0 }
            func run(window: Bool) -> (lp: [Float], ent: [Float], grads: [Float]) {
                let acts = Activations(config: cfg, batch: 3, length: layout.t)
                if window { acts.logitWindow = layout.logitWindow }
                model.forward(batch, acts)
                let (lp, ent) = LogitHeads.targetLogProbsAndEntropies(acts, targets: targets, temperature: 0.7)
                LogitHeads.logitGradient(acts, targets: targets, temperature: 0.7, dLogProb: dLogProb, dEntropy: nil)
                model.zeroGradients()
                model.backward(batch, acts, fromLogits: true)
                return (lp, ent, model.trainableGradients.array)
            }
            let full = run(window: false), windowed = run(window: true)
            XCTAssertEqual(full.lp.filter { $0 != 0 }.count, targets.filter { $0 >= 0 }.count)
            for i in 0..<targets.count where layout.logitWindow.contains(i % layout.t) {
                XCTAssertEqual(full.lp[i], windowed.lp[i], accuracy: 1e-5, "position \(i)")
                XCTAssertEqual(full.ent[i], windowed.ent[i], accuracy: 1e-5, "position \(i)")
            }
            let scale = full.grads.map(abs).max()!
            XCTAssertGreaterThan(scale, 0)
            let worst = zip(full.grads, windowed.grads).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-5 * scale, "parameter gradients")
        }
    }

    /// A set reshaped to a smaller batch, and back, gives the logits, values and gradients of a
    /// set allocated for that shape, bit for bit; a larger shape does not fit.
    func testReshapedActivationsMatchASetOfThatShape() {
        forEachArchitecture(configs) { cfg in
            let model = randomModel(cfg, seed: 37, scale: 2)
            var rng = SeededRandom(seed: 38)
            func batch(_ lengths: [Int]) -> TokenBatch {
                TokenBatch(leftPadding: lengths.map { randomTokens($0, vocab: cfg.vocabSize, rng: &rng) }, pad: 2)
            }
            let small = batch([4, 9]), large = batch([12, 3, 7])
            func run(_ b: TokenBatch, _ acts: Activations) -> [[Float]] {
                model.forward(b, acts)
                let targets = b.tokens.map { $0 == 2 ? Int32(-1) : $0 }
                LogitHeads.logitGradient(acts, targets: targets, temperature: 1, dLogProb: targets.map { $0 >= 0 ? 1 : 0 }, dEntropy: nil)
                model.zeroGradients()
                model.backward(b, acts, fromLogits: true)
                return [acts.lnf.array.prefix(b.batch * b.length * cfg.nEmbd).map { $0 }, model.trainableGradients.array]
            }
            let shared = Activations(config: cfg, batch: 3, length: large.length)
            XCTAssertTrue(shared.canHold(batch: small.batch, length: small.length))
            XCTAssertFalse(shared.canHold(batch: 4, length: 2))
            XCTAssertFalse(shared.canHold(batch: 1, length: large.length + 1))
            let firstLarge = run(large, shared)
            shared.reshape(batch: small.batch, length: small.length)
            XCTAssertEqual(run(small, shared), run(small, Activations(config: cfg, batch: small.batch, length: small.length)))
            shared.reshape(batch: 3, length: large.length)
            XCTAssertEqual(run(large, shared), firstLarge)
        }
    }

    /// Activation sets for passes of changing lengths: a shorter pass reuses the set, a longer
    /// one replaces it, and only one set per row count is held, whatever the lengths met.
    func testActivationSetsHoldOneSetPerRowCount() {
        let cfg = configs[0]
        let sets = ActivationSets(config: cfg)
        let first = sets.shaped(rows: 4, length: 10, room: 12)
        XCTAssertEqual([first.batch, first.length, first.allocatedLength], [4, 10, 12])
        let one = sets.floatCount
        XCTAssertTrue(sets.shaped(rows: 4, length: 6) === first)
        XCTAssertEqual(first.length, 6)
        XCTAssertTrue(sets.shaped(rows: 4, length: 12) === first)
        let longer = sets.shaped(rows: 4, length: 20)
        XCTAssertFalse(longer === first)
        XCTAssertEqual(longer.allocatedLength, 20)
        for t in [3, 17, 9, 20, 1] { XCTAssertTrue(sets.shaped(rows: 4, length: t) === longer) }
        XCTAssertEqual(sets.floatCount, Activations(config: cfg, batch: 4, length: 20).floatCount)
        XCTAssertGreaterThan(sets.floatCount, one)
        _ = sets.shaped(rows: 2, length: 5)
        XCTAssertEqual(sets.floatCount, longer.floatCount + Activations(config: cfg, batch: 2, length: 5).floatCount)
    }

    /// Scoring sorts the sequences by length into micro-batches padded to their own longest: the
    /// values come back in the order given, each as when its sequence is scored alone.
    func testScoresComeBackInOrderWhateverTheMicroBatches() {
        forEachArchitecture(configs) { cfg in
            let model = TransformerModel(config: cfg, scalarHead: true)
            model.initialize(seed: 33)
            var rng = SeededRandom(seed: 34)
            let seqs = [3, 17, 9, 17, 1, 30, 12, 5].map { randomTokens($0, vocab: cfg.vocabSize, rng: &rng) }
            let runner = ScalarHeadRunner(model: model, rows: 3)
            let alone = seqs.map { ScalarHeadRunner(model: model, rows: 1).scores([$0])[0] }
            let together = runner.scores(seqs)
            XCTAssertEqual(together.count, seqs.count)
            for (i, (x, y)) in zip(together, alone).enumerated() { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), "sequence \(i)") }
            XCTAssertEqual(runner.scores(Array(seqs.reversed())), together.reversed(), "the same values, whatever the order")
        }
    }

    /// A generator reuses its cache and prefill buffers between calls: calls with other prompts
    /// in between (longer ones, whose bigger cache the next call reuses with stale contents, and
    /// another batch size) leave no trace in the next call's samples.
    func testGeneratorReuseLeavesNoTrace() {
        forEachArchitecture(configs) { cfg in
            let model = randomModel(cfg, seed: 23, scale: 3)
            var rng = SeededRandom(seed: 24)
            let a = [randomTokens(5, vocab: cfg.vocabSize, rng: &rng), randomTokens(2, vocab: cfg.vocabSize, rng: &rng)]
            let b = (0..<2).map { _ in randomTokens(9, vocab: cfg.vocabSize, rng: &rng) }
            let settings = SamplingSettings(temperature: 0.9)
            func run(_ gen: Generator, _ prompts: [[Int32]], steps: Int) -> [Generation] {
                var r = SeededRandom(seed: 25)
                return gen.generate(prompts: prompts, maxNewTokens: steps, settings: settings, eos: nil, pad: 0, rng: &r)
            }
            let reused = Generator(model: model)
            let first = run(reused, a, steps: 8)
            _ = run(reused, a + a, steps: 4)
            _ = run(reused, b, steps: 20)
            XCTAssertEqual(run(reused, a, steps: 8), first) // reuses b's cache
            XCTAssertEqual(run(Generator(model: model), a, steps: 8), first)
        }
    }

    func testKVCacheMatchesFullForward() {
        forEachArchitecture(configs) { cfg in
            let model = randomModel(cfg, seed: 21, scale: 5)
            var rng = SeededRandom(seed: 22)
            let prompts = [
                randomTokens(7, vocab: cfg.vocabSize, rng: &rng), randomTokens(3, vocab: cfg.vocabSize, rng: &rng),
                randomTokens(12, vocab: cfg.vocabSize, rng: &rng), randomTokens(1, vocab: cfg.vocabSize, rng: &rng),
            ]
            let steps = 9
            let fed = (0..<prompts.count).map { _ in randomTokens(steps, vocab: cfg.vocabSize, rng: &rng) }
            let gen = Generator(model: model)
            let cache = gen.prefill(prompts: prompts, pad: 5, extra: steps)
            var cachedLogits: [[Float]] = [Array(UnsafeBufferPointer(start: gen.logits, count: prompts.count * cfg.vocabSize))]
            for s in 0..<steps {
                gen.decode(cache, tokens: fed.map { $0[s] }, positions: prompts.map { Int32($0.count + s) })
                cachedLogits.append(Array(UnsafeBufferPointer(start: gen.logits, count: prompts.count * cfg.vocabSize)))
            }
            // Full forward over prompt + fed tokens, left-padded the same way.
            let full = TokenBatch(leftPadding: zip(prompts, fed).map { $0 + $1 }, pad: 5)
            let acts = Activations(config: cfg, batch: full.batch, length: full.length)
            model.forward(full, acts)
            let v = cfg.vocabSize, tp = prompts.map(\.count).max()!
            var worst: Float = 0
            for b in 0..<prompts.count {
                let pad = tp - prompts[b].count
                for s in 0...steps {
                    // logits after the prompt plus s fed tokens sit at row (pad + len + s − 1)
                    let t = pad + prompts[b].count + s - 1
                    let fullRow = Array(UnsafeBufferPointer(start: acts.logits.pointer + (b * full.length + t) * v, count: v))
                    let cachedRow = Array(cachedLogits[s][b * v..<(b + 1) * v])
                    worst = max(worst, maxAbsDiff(fullRow, cachedRow))
                }
            }
            XCTAssertLessThanOrEqual(worst, 1e-4, "KV-cache logits vs full forward")
        }
    }

    func testLeftPaddingDoesNotChangeLogits() {
        forEachArchitecture(configs) { cfg in
            let model = randomModel(cfg, seed: 31, scalarHead: true, scale: 5)
            var rng = SeededRandom(seed: 32)
            let short = randomTokens(6, vocab: cfg.vocabSize, rng: &rng), long = randomTokens(15, vocab: cfg.vocabSize, rng: &rng)
            let alone = TokenBatch(tokens: short, batch: 1, length: short.count)
            let a1 = Activations(config: cfg, batch: 1, length: short.count)
            model.forward(alone, a1)
            let padded = TokenBatch(leftPadding: [long, short], pad: 3)
            let a2 = Activations(config: cfg, batch: 2, length: padded.length)
            model.forward(padded, a2)
            let v = cfg.vocabSize, off = padded.length - short.count
            let reference = Array(UnsafeBufferPointer(start: a1.logits.pointer, count: short.count * v))
            let inBatch = Array(UnsafeBufferPointer(start: a2.logits.pointer + (padded.length + off) * v, count: short.count * v))
            XCTAssertLessThanOrEqual(maxAbsDiff(reference, inBatch), 1e-5)
            XCTAssertEqual(model.lastTokenValues(padded, a2)[1], a1.values[short.count - 1], accuracy: 1e-5)
            // Right padding reads the reward at the last real token too.
            let right = TokenBatch(rightPadding: [long, short], pad: 3)
            let a3 = Activations(config: cfg, batch: 2, length: right.length)
            model.forward(right, a3, computeLogits: false)
            XCTAssertEqual(model.lastTokenValues(right, a3)[1], a1.values[short.count - 1], accuracy: 1e-5)
        }
    }
}
