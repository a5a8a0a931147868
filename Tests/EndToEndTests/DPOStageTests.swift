import Foundation
import RewardTraining
import TransformerCore
import XCTest

@testable import DPO
@testable import RunStore

/// `DPOStage` on a run: storage, lineage, metrics, the validation split it shares with
/// train-reward (hence here, beside another stage), a stop and resume that gives the same metrics
/// and weights as an uninterrupted run, and runs refused.
final class DPOStageTests: XCTestCase {
    var folders: [URL] = []
    override func tearDown() { for f in folders { try? FileManager.default.removeItem(at: f) } }

    /// A run with a tiny random base (registered as base, policy and reference) and imported
    /// pairs over 12 prompts, each pair from a ranking of its own.
    func makeRun() throws -> RunStore {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-dpo-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        folders.append(dir)
        let cfg = ModelConfig(nLayer: 1, nHead: 2, nEmbd: 32, nCtx: 64, vocabSize: 300)
        let model = TransformerModel(config: cfg)
        model.initialize(seed: 5)
        let tok = try BPETrainer.train(corpus: SyntheticText.generate(bytes: 20_000, seed: 3), vocabSize: 300)
        let template = "Q: {prompt}\nA:"
        try ModelFolder.save(
            model, tokenizer: tok, annotations: ModelAnnotations(promptTemplate: template), to: dir.appendingPathComponent("checkpoints/base"))
        let store = try RunStore(folder: dir, create: true)
        let sha = try SHA256.hex(of: dir.appendingPathComponent("checkpoints/base/model.safetensors"))
        var parent: Int64?
        for role in [ModelRole.base, .policy, .reference] {
            parent = try store.registerModel(
                role: role, path: "checkpoints/base", sha256: sha, config: "{}", promptTemplate: template,
                parentId: parent, stageRunId: nil
            ).id
        }
        let pairs = (0..<36).map { i in
            ImportedPair(prompt: "question \(i % 12)", chosen: "thanks, glad to help \(i)", rejected: "ugh whatever \(i)")
        }
        let sr = try store.beginStageRun(stage: "labels-import", config: "{}", seed: nil)
        _ = try store.importPairs(pairs, annotator: "file", stageRunId: sr, source: "import")
        try store.finishStageRun(sr, status: .succeeded)
        return store
    }

    func options() -> DPOConfig {
        var o = DPOConfig()
        o.epochs = 2; o.batch = 4; o.learningRate = 1e-3; o.saveEvery = 3; o.validationFraction = 0.25; o.seed = 7
        return o
    }

    func metrics(_ store: RunStore, _ id: Int64) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for m in try store.metrics(stageRunId: id) { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    func testStoppedAndResumedRunEqualsAnUninterruptedOne() throws {
        let a = try makeRun(), b = try makeRun()
        let whole = try DPOStage.run(store: a, options: options(), resume: false)
        var steps = 0
        let first = try DPOStage.run(
            store: b, options: options(), resume: false, events: { if case .step = $0 { steps += 1 } },
            shouldStop: { steps >= 4 })
        XCTAssertTrue(first.interrupted)
        XCTAssertEqual(try b.stageRuns(stage: "dpo").first?.status, .interrupted)
        XCTAssertEqual(try b.latestModel(role: .policy)?.step, 4, "the stop saved the step it reached")
        let rest = try DPOStage.run(store: b, options: DPOConfig(), resume: true)
        XCTAssertEqual(rest.firstStep, 4)
        XCTAssertEqual(try b.stageRuns(stage: "dpo").count, 1, "the resume continued the same stage run")
        let ma = try metrics(a, whole.stageRunId).filter { !$0.key.hasPrefix("time") }, mb = try metrics(b, rest.stageRunId)
        XCTAssertEqual(Set(ma.keys), Set(mb.keys))
        for (k, v) in ma { XCTAssertEqual(mb[k] ?? .nan, v, accuracy: 1e-12, k) }
        XCTAssertEqual(try a.latestModel(role: .policy)?.sha256, try b.latestModel(role: .policy)?.sha256)
        XCTAssertThrowsError(try DPOStage.run(store: b, options: DPOConfig(), resume: true)) { e in
            XCTAssertTrue("\(e)".contains("finished"), "\(e)")
        }
    }

    func testRunsWithoutComparisonsOrWithBadSettingsAreRefused() throws {
        let store = try makeRun()
        var o = options()
        o.objective.beta = 0
        XCTAssertThrowsError(try DPOStage.run(store: store, options: o, resume: false))
        o = options(); o.policyModel = 99
        XCTAssertThrowsError(try DPOStage.run(store: store, options: o, resume: false)) { XCTAssertTrue("\($0)".contains("#99"), "\($0)") }
        XCTAssertThrowsError(try DPOStage.run(store: store, options: options(), resume: true)) {
            XCTAssertTrue("\($0)".contains("no DPO run"), "\($0)")
        }
        XCTAssertTrue(try store.stageRuns(stage: "dpo").isEmpty, "a refused run records nothing")
    }

    func testTrainsRegistersAndSharesTrainRewardsSplit() throws {
        let store = try makeRun()
        let startPolicy = try XCTUnwrap(store.latestModel(role: .policy))
        let r = try DPOStage.run(store: store, options: options(), resume: false)
        XCTAssertFalse(r.interrupted)
        XCTAssertEqual(r.trainRankings + r.validationRankings, 36)
        XCTAssertEqual(r.totalSteps, 2 * ((r.trainRankings + 3) / 4))
        // The same prompts are held out as train-reward holds out with the same seed and fraction.
        let tok = try ModelFolder.load(store.verifiedFolder(startPolicy, sha256: SHA256.hex(of:)))
        let ex = try RewardData.examples(store: store, tokenizer: tok.tokenizer, annotations: tok.annotations, nCtx: 64, useStoredTokens: true)
        let (_, val) = RewardData.split(ex, fraction: 0.25, seed: 7)
        XCTAssertEqual(Set(val.map(\.promptId)), r.validationPrompts)
        XCTAssertTrue(r.trainPrompts.isDisjoint(with: r.validationPrompts))
        // The final policy is registered with its lineage and stage run.
        let final = try XCTUnwrap(store.latestModel(role: .policy))
        XCTAssertEqual(final.id, r.lastPolicy?.id)
        XCTAssertEqual(final.stageRunId, r.stageRunId)
        XCTAssertEqual(final.step, r.totalSteps)
        var chain: [Int64] = [], cur: ModelRecord? = final
        while let c = cur, c.stageRunId == r.stageRunId { chain.append(c.id); cur = try c.parentId.flatMap { try store.model(id: $0) } }
        XCTAssertEqual(cur?.id, startPolicy.id, "the checkpoints descend from the policy DPO started from")
        XCTAssertNoThrow(try store.verifiedFolder(final, sha256: SHA256.hex(of:)))
        // Metrics in TRL's names: every step, and validation at each epoch's end.
        let m = try metrics(store, r.stageRunId)
        for k in ["loss", "rewards/chosen", "rewards/rejected", "rewards/accuracies", "rewards/margins", "logps/chosen", "logps/rejected"] {
            XCTAssertNotNil(m["\(k)@1"], k)
            XCTAssertNotNil(m["eval_\(k)@\(r.totalSteps)"], "eval_" + k)
        }
        XCTAssertEqual(try store.metrics(stageRunId: r.stageRunId, names: ["eval_loss"]).map(\.step), [r.totalSteps / 2, r.totalSteps])
        // Training on these pairs raises the margin and lowers the loss on the training steps.
        XCTAssertLessThan(m["loss@\(r.totalSteps)"]!, m["loss@1"]!)
        XCTAssertEqual(try store.stageRuns(stage: "dpo").first?.status, .succeeded)
        // The reference's log-probabilities were stored, one per compared completion.
        let stored = try XCTUnwrap(store.stageState(r.stageRunId, "reference_logprobs"))
        XCTAssertEqual(try JSONDecoder().decode([String: Double].self, from: Data(stored.utf8)).count, 72)
    }

    /// The stage runs in its settings' precision, the stored one when it resumes (whatever the
    /// options given then), and leaves the products' precision as it found it.
    func testRunsAndResumesInTheStoredPrecision() throws {
        let store = try makeRun()
        var o = options()
        o.precision = .bf16
        var first: [Precision] = [], steps = 0
        let stopped = try DPOStage.run(
            store: store, options: o, resume: false,
            events: { if case .step = $0 { steps += 1; first.append(Kernels.precision) } }, shouldStop: { steps >= 2 })
        XCTAssertTrue(stopped.interrupted)
        XCTAssertEqual(Kernels.precision, .f32, "the stage put the precision back")
        var resumed: [Precision] = []
        let rest = try DPOStage.run(
            store: store, options: DPOConfig(), resume: true, events: { if case .step = $0 { resumed.append(Kernels.precision) } })
        XCTAssertFalse(rest.interrupted)
        XCTAssertEqual(first, [.bf16, .bf16])
        XCTAssertFalse(resumed.isEmpty)
        XCTAssertEqual(Set(resumed), [.bf16], "resumed with the stored precision, not the f32 of the options given")
        XCTAssertEqual(Kernels.precision, .f32)
        let stored = try store.storedConfig(try XCTUnwrap(try store.stageRuns(stage: "dpo").first), as: DPOStage.StoredRun.self)
        XCTAssertEqual(stored.options.precision, .bf16)

        // An f32 run is f32 whatever precision its caller was in.
        var inner: Set<Precision> = []
        try Kernels.using(precision: .bf16) {
            _ = try DPOStage.run(
                store: try makeRun(), options: options(), resume: false, events: { if case .step = $0 { inner.insert(Kernels.precision) } })
            XCTAssertEqual(Kernels.precision, .bf16)
        }
        XCTAssertEqual(inner, [.f32])
    }
}
