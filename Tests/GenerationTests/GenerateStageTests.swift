import Foundation
import TransformerCore
import XCTest

@testable import Generation
@testable import RunStore

/// A run with a tiny random policy and some prompts.
func makeRun(prompts: Int = 10, template: String? = nil, name: String = #function) throws -> RunStore {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("rlhf-gen-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    let cfg = ModelConfig(nLayer: 1, nHead: 2, nEmbd: 32, nCtx: 96, vocabSize: 300)
    let model = TransformerModel(config: cfg)
    model.initialize(seed: 5)
    // Larger weights, so that samples differ visibly between seeds.
    for slot in model.layout.slots where slot.decays { for i in 0..<slot.count { model.tensor(slot.name)[i] *= 8 } }
    let tok = try BPETrainer.train(corpus: SyntheticText.generate(bytes: 20_000, seed: 3), vocabSize: 300)
    let ck = dir.appendingPathComponent("checkpoints/base")
    try ModelFolder.save(model, tokenizer: tok, annotations: ModelAnnotations(promptTemplate: template), to: ck)
    let store = try RunStore(folder: dir, create: true)
    let sha = try SHA256.hex(of: ck.appendingPathComponent("model.safetensors"))
    try store.registerModel(
        role: .policy, path: "checkpoints/base", sha256: sha, config: "{}", promptTemplate: template, parentId: nil, stageRunId: nil)
    _ = try store.addPrompts((0..<prompts).map { NewPrompt(text: "prompt number \($0)") }, split: .train, source: nil)
    _ = try store.addPrompts([NewPrompt(text: "an eval prompt")], split: .eval, source: nil)
    return store
}

final class GenerateStageTests: XCTestCase {
    func options(_ k: Int = 3) -> GenerateConfig {
        var o = GenerateConfig()
        o.perPrompt = k; o.maxNewTokens = 12; o.batchSize = 7; o.seed = 42
        return o
    }

    func byPrompt(_ store: RunStore) throws -> [String: [[Int32]]] {
        var out: [String: [[Int32]]] = [:]
        for p in try store.prompts() { out[p.text] = try store.completions(promptId: p.id).map(\.tokenIds) }
        return out
    }

    func testGeneratesKPerPromptAndIsIdempotent() throws {
        let store = try makeRun()
        let r = try GenerateStage.run(store: store, options: options())
        XCTAssertEqual(r.completions, 30); XCTAssertEqual(r.prompts, 10)
        for p in try store.prompts(split: .train) {
            let cs = try store.completions(promptId: p.id)
            XCTAssertEqual(cs.count, 3)
            for c in cs {
                XCTAssertTrue(c.finishReason == "eos" || c.tokenIds.count == 12)
                XCTAssertTrue(c.sampling.contains("\"temperature\":0.7"))
                XCTAssertEqual(c.stageRunId, r.stageRunId)
            }
        }
        XCTAssertEqual(try store.completions(promptId: store.prompts(split: .eval)[0].id).count, 0, "the default split is train")
        let again = try GenerateStage.run(store: store, options: options())
        XCTAssertNil(again.stageRunId)
        XCTAssertEqual(again.alreadyDone, 10)
        var more = options(); more.again = true; more.limit = 2
        let r3 = try GenerateStage.run(store: store, options: more)
        XCTAssertEqual(r3.completions, 6)
        XCTAssertEqual(try store.counts().completions, 36)
        XCTAssertEqual(try store.stageRuns(stage: "generate").map(\.status), [.succeeded, .succeeded])
    }

    func testAnInterruptedRunResumesToTheSameSamples() throws {
        // One run straight through…
        let whole = try makeRun()
        _ = try GenerateStage.run(store: whole, options: options())
        // …and one stopped after its first batch, then rerun.
        let split = try makeRun()
        var batches = 0
        let r1 = try GenerateStage.run(
            store: split, options: options(), progress: { done, _ in if done > 0 { batches += 1 } }, shouldStop: { batches >= 1 })
        XCTAssertTrue(r1.interrupted)
        XCTAssertEqual(r1.completions, 6, "batch 7 holds two whole prompts of 3")
        XCTAssertEqual(try split.stageRuns(stage: "generate")[0].status, .interrupted)
        let r2 = try GenerateStage.run(store: split, options: options())
        XCTAssertEqual(r2.completions, 24)
        XCTAssertEqual(try byPrompt(split), try byPrompt(whole))
        // A different seed gives different samples.
        let other = try makeRun()
        var o = options(); o.seed = 7
        _ = try GenerateStage.run(store: other, options: o)
        XCTAssertNotEqual(try byPrompt(other), try byPrompt(whole))
    }

    func testPartialPromptsGetTheRest() throws {
        let store = try makeRun(prompts: 2)
        _ = try GenerateStage.run(store: store, options: options(2))
        let r = try GenerateStage.run(store: store, options: options(5))
        XCTAssertEqual(r.completions, 6)
        for p in try store.prompts(split: .train) { XCTAssertEqual(try store.completions(promptId: p.id).count, 5) }
    }

    func testThePromptTemplateIsAppliedAndNotStored() throws {
        let template = "Q: {prompt}\nA:"
        let store = try makeRun(prompts: 1, template: template)
        var o = options(1); o.sampling = SamplingSettings(greedy: true)
        _ = try GenerateStage.run(store: store, options: o)
        let p = try store.prompts(split: .train)[0]
        let c = try store.completions(promptId: p.id)[0]
        // The same greedy continuation, computed directly from the templated prompt.
        let m = try ModelFolder.load(store.folder.appendingPathComponent("checkpoints/base"))
        var rng = SeededRandom(seed: 0)
        let direct = Generator(model: m.model).generate(
            prompts: [m.tokenizer.encode("Q: prompt number 0\nA:")], maxNewTokens: 12,
            settings: SamplingSettings(greedy: true), eos: m.tokenizer.eosId, pad: 0, rng: &rng)[0]
        XCTAssertEqual(c.tokenIds, direct.tokens)
        let body = c.finishReason == "eos" ? Array(c.tokenIds.dropLast()) : c.tokenIds
        XCTAssertEqual(c.text, m.tokenizer.decode(body))
        XCTAssertFalse(c.text.hasPrefix("Q:"))
        XCTAssertEqual(Double(direct.logProbs.reduce(0, +)), c.logprobSum!, accuracy: 1e-6)
    }

    func testErrorsWithoutPromptsOrPolicyOrWithAChangedCheckpoint() throws {
        let store = try makeRun(prompts: 1)
        var o = options(); o.split = .eval
        _ = try GenerateStage.run(store: store, options: o)
        let empty = try RunStore(folder: store.folder.appendingPathComponent("empty"), create: true)
        XCTAssertThrowsError(try GenerateStage.run(store: empty, options: options())) { e in XCTAssertTrue("\(e)".contains("rlhf init"), "\(e)") }
        let weights = store.folder.appendingPathComponent("checkpoints/base/model.safetensors")
        var bytes = try Data(contentsOf: weights)
        bytes[bytes.count - 1] ^= 1
        try bytes.write(to: weights)
        var all = options(); all.split = nil; all.again = true
        XCTAssertThrowsError(try GenerateStage.run(store: store, options: all)) { e in XCTAssertTrue("\(e)".contains("has changed"), "\(e)") }
    }
}
