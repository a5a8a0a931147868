import Foundation
import TransformerCore
import XCTest

@testable import Compare
@testable import RunStore

/// Head-to-head counting, its interval, and paired sampling.
final class CompareTests: XCTestCase {
    func testWilsonIntervalMatchesTheTextbookFigures() {
        // 8 of 10 at 95%: (0.4902, 0.9433), as statsmodels' proportion_confint(method="wilson") gives.
        let a = HeadToHead.wilson(successes: 8, trials: 10)
        XCTAssertEqual(a.low, 0.4902, accuracy: 1e-4); XCTAssertEqual(a.high, 0.9433, accuracy: 1e-4)
        let b = HeadToHead.wilson(successes: 0, trials: 20)
        XCTAssertEqual(b.low, 0, accuracy: 1e-12); XCTAssertEqual(b.high, 0.1611, accuracy: 1e-4)
        XCTAssertTrue(HeadToHead.wilson(successes: 0, trials: 0).low.isNaN)
    }

    func testTallyCountsWinsLossesAndTies() {
        let t = HeadToHead.tally([3, 1, 2, 2, 5], [1, 1, 3, 0, 4])
        XCTAssertEqual([t.wins, t.losses, t.ties], [3, 1, 1])
        XCTAssertEqual(t.preferred, 0.75)
    }

    /// A run with one tiny random policy registered twice (two ids, same weights) and eval prompts.
    func makeRun() throws -> (RunStore, Int64, Int64) {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-compare-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let model = TransformerModel(config: ModelConfig(nLayer: 1, nHead: 2, nEmbd: 32, nCtx: 64, vocabSize: 300))
        model.initialize(seed: 5)
        for slot in model.layout.slots where slot.decays { for i in 0..<slot.count { model.tensor(slot.name)[i] *= 8 } }
        let tok = try BPETrainer.train(corpus: SyntheticText.generate(bytes: 20_000, seed: 3), vocabSize: 300)
        try ModelFolder.save(model, tokenizer: tok, to: dir.appendingPathComponent("checkpoints/p"))
        let store = try RunStore(folder: dir, create: true)
        let sha = try SHA256.hex(of: dir.appendingPathComponent("checkpoints/p/model.safetensors"))
        let a = try store.registerModel(
            role: .policy, path: "checkpoints/p", sha256: sha, config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        let b = try store.registerModel(
            role: .policy, path: "checkpoints/p", sha256: sha, config: "{}", promptTemplate: nil, parentId: a.id, stageRunId: nil)
        _ = try store.addPrompts((0..<5).map { NewPrompt(text: "eval prompt \($0)") }, split: .eval, source: nil)
        return (store, a.id, b.id)
    }

    func testTheSameWeightsTieEveryPairAndTheRunIsRecorded() throws {
        let (store, a, b) = try makeRun()
        var o = CompareConfig()
        o.a = a; o.b = b; o.perPrompt = 3; o.maxNewTokens = 10; o.temperature = 1
        let r = try CompareStage.run(store: store, options: o, judge: .text(name: "chars") { Double($0.count) })
        XCTAssertEqual(r.tally.pairs, 15)
        XCTAssertEqual(r.tally.ties, 15, "common random numbers: the same model draws the same completions")
        XCTAssertEqual(try store.stageRuns(stage: "compare").first?.status, .succeeded)
        XCTAssertEqual(try store.metrics(stageRunId: r.stageRunId, names: ["compare/ties"]).first?.value, 15)
        // A model against itself is refused.
        o.b = a
        XCTAssertThrowsError(try CompareStage.run(store: store, options: o, judge: .length))
    }

    func testPairedSamplesFollowThePromptOrder() throws {
        let (store, a, _) = try makeRun()
        let rec = try XCTUnwrap(store.model(id: a))
        let m = try ModelFolder.load(store.verifiedFolder(rec, sha256: SHA256.hex(of:)))
        let prompts = try store.prompts(split: .eval)
        let s = try HeadToHead.sample(
            m, prompts: prompts, perPrompt: 2, maxNewTokens: 8, settings: SamplingSettings(temperature: 1), seed: 1, batch: 3)
        XCTAssertEqual(s.map(\.promptId), prompts.flatMap { [$0.id, $0.id] })
        XCTAssertTrue(s.allSatisfy { !$0.tokens.isEmpty && $0.tokens.count <= 8 })
        // Different seeds draw different completions (the pairing is not trivially equal).
        let t = try HeadToHead.sample(m, prompts: prompts, perPrompt: 2, maxNewTokens: 8, settings: SamplingSettings(temperature: 1), seed: 2)
        XCTAssertNotEqual(s.map(\.tokens), t.map(\.tokens))
    }
}
