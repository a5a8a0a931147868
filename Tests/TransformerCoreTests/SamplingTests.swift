import XCTest

@testable import TransformerCore

final class SamplingTests: EveryPathTestCase {
    let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 32, nCtx: 48, vocabSize: 61)

    func prompts(_ rng: inout SeededRandom) -> [[Int32]] {
        [
            randomTokens(5, vocab: cfg.vocabSize, rng: &rng), randomTokens(2, vocab: cfg.vocabSize, rng: &rng),
            randomTokens(9, vocab: cfg.vocabSize, rng: &rng),
        ]
    }

    func testGreedyIsArgmaxOfFullForward() {
        forEachPath {
            let model = randomModel(cfg, seed: 41, scale: 8)
            var rng = SeededRandom(seed: 42)
            let ps = prompts(&rng)
            var r = SeededRandom(seed: 1)
            let out = Generator(model: model).generate(
                prompts: ps, maxNewTokens: 10, settings: SamplingSettings(greedy: true),
                eos: nil, pad: 0, rng: &r)
            for (p, g) in zip(ps, out) {
                XCTAssertEqual(g.tokens.count, 10)
                XCTAssertEqual(g.finishReason, .length)
                // Re-derive each token as the argmax of a full forward over the sequence so far.
                var seq = p
                for (i, tok) in g.tokens.enumerated() {
                    let acts = Activations(config: cfg, batch: 1, length: seq.count)
                    model.forward(TokenBatch(tokens: seq, batch: 1, length: seq.count), acts)
                    let row = Array(UnsafeBufferPointer(start: acts.logits.pointer + (seq.count - 1) * cfg.vocabSize, count: cfg.vocabSize))
                    let argmax = row.indices.max { row[$0] < row[$1] }!
                    XCTAssertEqual(Int(tok), argmax, "step \(i)")
                    // reported log-probability is log softmax at temperature 1
                    let m = row.max()!
                    let lse = m + log(row.reduce(0) { $0 + exp($1 - m) })
                    XCTAssertEqual(g.logProbs[i], row[argmax] - lse, accuracy: 1e-4)
                    seq.append(tok)
                }
            }
        }
    }

    /// A batch of a few dozen rows, as GRPO samples: the decode products take the blocked path
    /// with kept weights, split between the workers by columns, their last panel on a narrow
    /// tile. Greedy tokens must still be the argmax of a full forward, on every architecture.
    func testGreedyInABatchOfDozensIsArgmaxOfFullForward() {
        forEachArchitecture(Self.architectureConfigs(layers: 2, embd: 32, ctx: 40, vocab: 131)) { cfg in
            let model = randomModel(cfg, seed: 45, scale: 8)
            var rng = SeededRandom(seed: 46)
            let ps = (0..<30).map { i in randomTokens(1 + i % 7, vocab: cfg.vocabSize, rng: &rng) }
            var r = SeededRandom(seed: 1)
            let out = Generator(model: model).generate(
                prompts: ps, maxNewTokens: 4, settings: SamplingSettings(greedy: true), eos: nil, pad: 0, rng: &r)
            XCTAssertEqual(Gemm.keptPackedFloatCount, 0, "the packed weights go when sampling ends")
            for (p, g) in zip(ps, out) {
                let seq = p + g.tokens.dropLast()
                let acts = Activations(config: cfg, batch: 1, length: seq.count)
                model.forward(TokenBatch(tokens: seq, batch: 1, length: seq.count), acts)
                for (i, tok) in g.tokens.enumerated() {
                    let at = p.count - 1 + i
                    let row = Array(UnsafeBufferPointer(start: acts.logits.pointer + at * cfg.vocabSize, count: cfg.vocabSize))
                    XCTAssertEqual(Int(tok), row.indices.max { row[$0] < row[$1] }!, "prompt \(p.count), step \(i)")
                }
            }
        }
    }

    /// A prompt given several times (GRPO's group) runs through the model once, its cache copied
    /// to each row: the tokens and log-probabilities are the same bits as with every row run.
    func testRepeatedPromptsSharePrefillWithTheSameBits() {
        forEachArchitecture(Self.architectureConfigs(layers: 2, embd: 32, ctx: 40, vocab: 131)) { cfg in
            let model = randomModel(cfg, seed: 47, scale: 3)
            var rng = SeededRandom(seed: 48)
            let distinct = (0..<5).map { i in randomTokens(2 + 3 * i, vocab: cfg.vocabSize, rng: &rng) }
            let ps = (0..<20).map { distinct[$0 / 4] } + [distinct[1]]
            func run(sharing: Bool) -> [Generation] {
                let gen = Generator(model: model)
                gen.sharesRepeatedPrompts = sharing
                var r = SeededRandom(seed: 9)
                return gen.generate(prompts: ps, maxNewTokens: 12, settings: SamplingSettings(temperature: 0.8), eos: nil, pad: 0, rng: &r)
            }
            let shared = run(sharing: true), separate = run(sharing: false)
            XCTAssertEqual(shared.map(\.tokens), separate.map(\.tokens))
            XCTAssertEqual(shared.map { $0.logProbs.map(\.bitPattern) }, separate.map { $0.logProbs.map(\.bitPattern) })
            XCTAssertNotEqual(shared[0].tokens, shared[1].tokens, "rows of one prompt sample on their own")
        }
    }

    /// Each step's rows are picked in parallel, with their uniforms drawn first in row order: the
    /// tokens and log-probabilities are those of one sampler picking the rows in turn, as this
    /// reference loop over the public prefill and decode steps does, with rows that stop at
    /// different steps (and so leave gaps among the rows still picked).
    func testParallelPicksAreThoseOfPickingRowsInTurn() {
        let model = randomModel(cfg, seed: 61, scale: 3)
        let v = model.config.vocabSize, steps = 10
        var rng = SeededRandom(seed: 62)
        let ps = (0..<9).map { i in randomTokens(3 + i, vocab: v, rng: &rng) }
        for settings in [SamplingSettings(temperature: 0.9), SamplingSettings(temperature: 1.1, topK: 12, topP: 0.9)] {
            func generated(stop: [Int32]) -> [Generation] {
                var r = SeededRandom(seed: 5)
                return Generator(model: model).generate(prompts: ps, maxNewTokens: steps, settings: settings, stopTokens: stop, pad: 0, rng: &r)
            }
            // Row 0's first token: its first uniform is the first drawn, stop or not.
            let stop = generated(stop: [])[0].tokens[0]
            let got = generated(stop: [stop])
            let gen = Generator(model: model)
            let cache = gen.prefill(prompts: ps, pad: 0, extra: steps)
            XCTAssertTrue(cache.capacity >= ps.map(\.count).max()! + steps && cache.capacity % 16 == 0, "whole vectors of positions")
            let sampler = Sampler(settings: settings, vocabSize: v)
            var r = SeededRandom(seed: 5)
            var tokens = ps.map { _ in [Int32]() }, logProbs = ps.map { _ in [Float]() }
            var done = ps.map { _ in false }, next = ps.map { _ in Int32(0) }, positions = ps.map { Int32($0.count) }
            for step in 0..<steps {
                for i in ps.indices where !done[i] {
                    let (tok, lp) = sampler.pick(gen.logits + i * v, v, rng: &r)
                    tokens[i].append(tok); logProbs[i].append(lp); next[i] = tok
                    done[i] = tok == stop
                }
                if step == steps - 1 || !done.contains(false) { break }
                gen.decode(cache, tokens: next, positions: positions)
                for i in ps.indices { positions[i] += 1 }
            }
            XCTAssertEqual(got.map(\.tokens), tokens)
            XCTAssertEqual(got.map { $0.logProbs.map(\.bitPattern) }, logProbs.map { $0.map(\.bitPattern) })
            XCTAssertEqual(got[0].finishReason, .eos)
            XCTAssertEqual(got[0].tokens.count, 1)
            XCTAssertTrue(got.contains { $0.finishReason == .length }, "some rows run to the limit")
        }
    }

    /// A row that stops leaves the batch: the steps after it run only the rows still sampling.
    /// Their tokens are those of every row running every step (this reference loop), and their
    /// log-probabilities too up to rounding: fewer rows take other product kernels, whose sums
    /// may round differently in the last bits. For a small model (each core decodes its rows)
    /// and one past `batchSplitBytes` (the cores split each product), on every architecture and
    /// path, while the rows left fall from the blocked products to the few-row kernels.
    func testStoppedRowsLeaveTheBatchWithTheSameBits() {
        for (embd, vocab) in [(32, 131), (640, 256)] {
            forEachArchitecture(Self.architectureConfigs(layers: 2, embd: embd, ctx: 40, vocab: vocab)) { cfg in
                let model = randomModel(cfg, seed: 63, scale: 3)
                XCTAssertEqual(model.layout.count * 4 > Generator.batchSplitBytes, embd > 32, "the two decode splits")
                let v = cfg.vocabSize, steps = 12
                var rng = SeededRandom(seed: 64)
                let ps = (0..<30).map { i in randomTokens(1 + i % 9, vocab: v, rng: &rng) }
                // About one token in five stops a row.
                let stops = (0..<v / 5).map { _ in Int32(rng.int(below: v)) }, stopSet = Set(stops)
                let settings = SamplingSettings(temperature: 1)
                var r = SeededRandom(seed: 6)
                let gen = Generator(model: model)
                let got = gen.generate(prompts: ps, maxNewTokens: steps, settings: settings, stopTokens: stops, pad: 0, rng: &r)
                let decoded = gen.lastTiming.decodedRows

                let ref = Generator(model: model)
                let cache = ref.prefill(prompts: ps, pad: 0, extra: steps)
                let sampler = Sampler(settings: settings, vocabSize: v)
                r = SeededRandom(seed: 6)
                var tokens = ps.map { _ in [Int32]() }, logProbs = ps.map { _ in [Float]() }, liveRows = 0
                var done = ps.map { _ in false }, next = ps.map { _ in Int32(0) }, positions = ps.map { Int32($0.count) }
                for step in 0..<steps {
                    for i in ps.indices where !done[i] {
                        let (tok, lp) = sampler.pick(ref.logits + i * v, v, rng: &r)
                        tokens[i].append(tok); logProbs[i].append(lp); next[i] = tok
                        done[i] = stopSet.contains(tok)
                    }
                    if step == steps - 1 || !done.contains(false) { break }
                    ref.decode(cache, tokens: next, positions: positions)
                    liveRows += done.filter { !$0 }.count
                    for i in ps.indices { positions[i] += 1 }
                }
                XCTAssertEqual(got.map(\.tokens), tokens)
                for (g, want) in zip(got, logProbs) where g.logProbs.count == want.count {
                    for (x, y) in zip(g.logProbs, want) { XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y))) }
                }
                let lengths = got.map(\.tokens.count)
                XCTAssertTrue(lengths.contains { $0 <= 2 } && lengths.contains(steps), "rows stop early and late: \(lengths)")
                XCTAssertTrue(lengths.filter { $0 < steps }.count >= 24, "most rows stop, so few are left: \(lengths)")
                XCTAssertEqual(decoded, liveRows, "the steps ran only the rows still sampling")
                XCTAssertLessThan(decoded, ps.count * (steps - 1))
            }
        }
    }

    func testSameSeedSameTokensAndEosStops() {
        forEachPath {
            let model = randomModel(cfg, seed: 43, scale: 3)
            var rng = SeededRandom(seed: 44)
            let ps = prompts(&rng)
            let settings = SamplingSettings(temperature: 0.9, topK: 20, topP: 0.95)
            func run(_ seed: UInt64, eos: Int32?) -> [Generation] {
                var r = SeededRandom(seed: seed)
                return Generator(model: model).generate(prompts: ps, maxNewTokens: 30, settings: settings, eos: eos, pad: 0, rng: &r)
            }
            let a = run(7, eos: nil), b = run(7, eos: nil), c = run(8, eos: nil)
            XCTAssertEqual(a, b)
            XCTAssertNotEqual(a.map(\.tokens), c.map(\.tokens))
            // Pick as EOS a token that the first sequence samples; it must stop right there.
            let eos = a[0].tokens[3]
            let firstHit = a[0].tokens.firstIndex(of: eos)!
            let stopped = run(7, eos: eos)
            XCTAssertEqual(stopped[0].finishReason, .eos)
            XCTAssertEqual(stopped[0].tokens, Array(a[0].tokens[...firstHit]))
            for g in stopped { XCTAssertTrue(g.finishReason == .eos ? g.tokens.last == eos : g.tokens.count == 30) }
        }
    }

    func testTopKAndTopPStayInsideTheirSets() {
        forEachPath {
            var rng = SeededRandom(seed: 50)
            let v = 40
            let logits = (0..<v).map { _ in rng.normal() * 2 }
            let sortedIdx = logits.indices.sorted { logits[$0] > logits[$1] }
            let topK = Set(sortedIdx.prefix(5))
            let kSampler = Sampler(settings: SamplingSettings(temperature: 1.5, topK: 5), vocabSize: v)
            // nucleus at p = 0.6 under temperature 1
            let m = logits.max()!
            let probs = logits.map { exp($0 - m) }, z = probs.reduce(0, +)
            var cum: Float = 0, nucleus = Set<Int>()
            for i in sortedIdx { nucleus.insert(i); cum += probs[i] / z; if cum >= 0.6 { break } }
            let pSampler = Sampler(settings: SamplingSettings(temperature: 1, topP: 0.6), vocabSize: v)
            var seenK = Set<Int>(), seenP = Set<Int>()
            logits.withUnsafeBufferPointer { lp in
                for _ in 0..<2000 {
                    seenK.insert(Int(kSampler.pick(lp.baseAddress!, v, rng: &rng).token))
                    seenP.insert(Int(pSampler.pick(lp.baseAddress!, v, rng: &rng).token))
                }
            }
            XCTAssertTrue(seenK.isSubset(of: topK), "top-k sampled \(seenK.subtracting(topK))")
            XCTAssertEqual(seenK.count, 5, "all of the top 5 should appear in 2000 draws at temperature 1.5")
            XCTAssertTrue(seenP.isSubset(of: nucleus))
            XCTAssertGreaterThan(seenP.count, 0)
        }
    }

    func testSamplingFrequenciesFollowTheDistribution() {
        forEachPath {
            // Plain sampling at temperature 0.5 from fixed logits: empirical frequencies within 3%.
            let logits: [Float] = [1.0, 0.0, -1.0, 0.5]
            let tau: Float = 0.5
            let e = logits.map { exp($0 / tau) }, z = e.reduce(0, +)
            let sampler = Sampler(settings: SamplingSettings(temperature: tau), vocabSize: 4)
            var rng = SeededRandom(seed: 60)
            var counts = [Int](repeating: 0, count: 4)
            let n = 20000
            logits.withUnsafeBufferPointer { lp in
                for _ in 0..<n {
                    let (t, lpv) = sampler.pick(lp.baseAddress!, 4, rng: &rng)
                    counts[Int(t)] += 1
                    XCTAssertEqual(lpv, log(e[Int(t)] / z), accuracy: 1e-5)
                }
            }
            for i in 0..<4 { XCTAssertEqual(Double(counts[i]) / Double(n), Double(e[i] / z), accuracy: 0.03) }
        }
    }
}
