import Foundation
import StageKit
import TransformerCore
import XCTest

@testable import RunStore
@testable import SFT

/// `SFTStage` on a run: what it trains on and stores, a stop and resume that gives the same
/// metrics and weights as an uninterrupted run, the reference it leaves for later stages, and
/// the demonstrations rejection sampling makes.
final class SFTStageTests: XCTestCase {
    var folders: [URL] = []
    override func tearDown() { for f in folders { try? FileManager.default.removeItem(at: f) } }

    /// A run with a tiny random base (registered as base, policy and reference), 12 train and 3
    /// eval prompts, and a demonstration for each train prompt (`demonstrations`).
    func makeRun(demonstrations: Bool = true) throws -> RunStore {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-sft-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
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
                role: role, path: "checkpoints/base", sha256: sha, config: "{}", promptTemplate: template, parentId: parent, stageRunId: nil
            ).id
        }
        _ = try store.addPrompts((0..<12).map { NewPrompt(text: "question \($0)") }, split: .train, source: "test")
        _ = try store.addPrompts((0..<3).map { NewPrompt(text: "eval question \($0)") }, split: .eval, source: "test")
        if demonstrations {
            for p in try store.prompts(split: .train) {
                try store.submitDemonstration(
                    NewDemonstration(promptId: p.id, text: "thanks, glad to help with \(p.text)", annotator: "ann", startedAt: 1, submittedAt: 2))
            }
        }
        return store
    }

    func settings() -> SFTConfig {
        var s = SFTConfig()
        s.epochs = 2; s.batch = 4; s.microBatch = 3; s.learningRate = 1e-3; s.saveEvery = 2; s.validationFraction = 0.25; s.seed = 7
        return s
    }

    func metrics(_ store: RunStore, _ id: Int64) throws -> [String: Double] {
        var out: [String: Double] = [:]
        for m in try store.metrics(stageRunId: id) { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    func testTrainsStoresAndMakesTheSFTPolicyTheReference() throws {
        let store = try makeRun()
        let base = try store.latestModel(role: .policy)!
        let r = try SFTStage.run(store: store, settings: settings(), resume: false)
        // 12 prompts, a quarter held out: 9 train, 3 validation; 3 steps per epoch.
        XCTAssertEqual(r.trainExamples, 9)
        XCTAssertEqual(r.validationExamples, 3)
        XCTAssertEqual(r.totalSteps, 6)
        let m = try metrics(store, r.stageRunId)
        for name in ["loss", "mean_token_accuracy", "entropy", "num_tokens", "grad_norm", "learning_rate", "epoch"] {
            XCTAssertNotNil(m["\(name)@6"], name)
        }
        for name in ["eval_loss", "eval_mean_token_accuracy", "eval_entropy"] {
            XCTAssertNotNil(m["\(name)@3"], name)
            XCTAssertNotNil(m["\(name)@6"], name)
        }
        XCTAssertLessThan(m["eval_loss@6"]!, m["eval_loss@3"]!, "it learns the demonstrations")
        XCTAssertLessThan(m["num_tokens@3"]!, m["num_tokens@6"]!, "num_tokens counts up")
        let policy = try XCTUnwrap(store.latestModel(role: .policy))
        XCTAssertEqual(policy.step, 6)
        XCTAssertEqual(policy.note, "SFT step 6")
        XCTAssertNotEqual(policy.sha256, base.sha256)
        // The later stages' reference is the SFT policy, with its weights.
        let ref = try XCTUnwrap(store.latestModel(role: .reference))
        XCTAssertEqual(ref.path, policy.path)
        XCTAssertEqual(ref.sha256, policy.sha256)
        XCTAssertEqual(ref.parentId, policy.id)
        XCTAssertEqual(r.reference?.id, ref.id)
        XCTAssertTrue(try store.sameWeights(ref, policy))
        let stored = try JSONSerialization.jsonObject(with: Data(store.stageRuns(stage: "sft")[0].config.utf8)) as! [String: Any]
        XCTAssertEqual((stored["demonstrationIds"] as? [Any])?.count, 12)
        XCTAssertEqual(try store.stageRuns(stage: "sft")[0].status, .succeeded)
    }

    func testKeepReferenceLeavesTheReference() throws {
        let store = try makeRun()
        let before = try store.latestModel(role: .reference)!
        var s = settings()
        s.keepReference = true
        s.epochs = 1
        let r = try SFTStage.run(store: store, settings: s, resume: false)
        XCTAssertNil(r.reference)
        XCTAssertEqual(try store.latestModel(role: .reference), before)
    }

    func testEvalPromptDemonstrationsAreTheValidation() throws {
        let store = try makeRun()
        for p in try store.prompts(split: .eval) {
            try store.submitDemonstration(NewDemonstration(promptId: p.id, text: "an eval answer", annotator: "ann", startedAt: 1, submittedAt: 2))
        }
        var s = settings()
        s.epochs = 1
        let r = try SFTStage.run(store: store, settings: s, resume: false)
        XCTAssertEqual(r.trainExamples, 12)
        XCTAssertEqual(r.validationExamples, 3)
    }

    func testStoppedAndResumedRunEqualsAnUninterruptedOne() throws {
        for lora in [false, true] {
            let a = try makeRun(), b = try makeRun()
            var s = settings()
            if lora { s.lora = LoRAConfig(rank: 2, alpha: 4, targets: [], dropout: 0.1) }
            let whole = try SFTStage.run(store: a, settings: s, resume: false)
            var steps = 0
            let first = try SFTStage.run(
                store: b, settings: s, resume: false, events: { if case .step = $0 { steps += 1 } }, shouldStop: { steps >= 3 })
            XCTAssertTrue(first.interrupted)
            XCTAssertNil(first.reference, "an interrupted run leaves the reference alone")
            XCTAssertEqual(try b.latestModel(role: .policy)?.step, 3)
            let rest = try SFTStage.run(store: b, settings: SFTConfig(), resume: true)
            XCTAssertEqual(rest.firstStep, 3)
            XCTAssertEqual(try b.stageRuns(stage: "sft").count, 1, "the resume continued the same stage run")
            let ma = try metrics(a, whole.stageRunId), mb = try metrics(b, rest.stageRunId)
            XCTAssertEqual(Set(ma.keys), Set(mb.keys))
            for (k, v) in ma { XCTAssertEqual(mb[k] ?? .nan, v, accuracy: 1e-12, "\(k), LoRA \(lora)") }
            XCTAssertEqual(try a.latestModel(role: .policy)?.sha256, try b.latestModel(role: .policy)?.sha256, "LoRA \(lora)")
            XCTAssertEqual(try b.latestModel(role: .reference)?.sha256, try b.latestModel(role: .policy)?.sha256)
            if lora { XCTAssertNotNil(try b.latestModel(role: .policy)?.baseId, "LoRA checkpoints are adapters over the start") }
        }
    }

    func testRunsWithoutDemonstrationsAreRefused() throws {
        let store = try makeRun(demonstrations: false)
        XCTAssertThrowsError(try SFTStage.run(store: store, settings: settings(), resume: false)) { e in
            XCTAssertTrue("\(e)".contains("no demonstrations"), "\(e)")
        }
        XCTAssertThrowsError(try SFTStage.run(store: store, settings: settings(), resume: true)) { e in
            XCTAssertTrue("\(e)".contains("sft") || "\(e)".contains("SFT"), "\(e)")
        }
        var s = settings()
        s.from = .rankings
        XCTAssertThrowsError(try SFTStage.run(store: store, settings: s, resume: false)) { e in
            XCTAssertTrue("\(e)".contains("no rankings"), "\(e)")
        }
        XCTAssertTrue(try store.stageRuns(stage: "sft").isEmpty, "nothing was begun")
    }

    func testRankingsGiveTheirTopCompletion() throws {
        let store = try makeRun(demonstrations: false)
        let policy = try store.latestModel(role: .policy)!
        let prompts = try store.prompts(split: .train)
        let sr = try store.beginStageRun(stage: "generate", config: "{}", seed: nil)
        var items: [(Int64, [Int64])] = []
        for p in prompts.prefix(4) {
            try store.addCompletions(
                ["good answer", "bad answer", "cut off answ"].enumerated().map { i, t in
                    NewCompletion(
                        promptId: p.id, modelId: policy.id, stageRunId: sr, text: "\(t) \(p.id)", tokenIds: [],
                        finishReason: i == 2 ? "length" : "eos", logprobSum: nil, sampling: "{}")
                })
            items.append((p.id, try store.completions(promptId: p.id).map(\.id)))
        }
        func rank(_ k: Int, ranks: [Int], status: RankingStatus = .ranked) throws {
            try store.submitRanking(
                NewRanking(
                    promptId: items[k].0, modelId: policy.id, annotator: "ann", shownOrder: items[k].1, ranks: status == .ranked ? ranks : nil,
                    status: status, guidelineVersion: "v1", startedAt: 1, submittedAt: 2))
        }
        try rank(0, ranks: [2, 1, 3]) // the second ("bad answer") is on top
        try rank(1, ranks: [1, 1, 2]) // a tie at the top: the first shown
        try rank(2, ranks: [2, 3, 1]) // the top did not stop: none
        try rank(3, ranks: [], status: .skipped)
        let (made, passed) = try RejectionSampling.fromRankings(store: store, now: 5)
        XCTAssertEqual(made.map(\.fromCompletionId), [items[0].1[1], items[1].1[0]])
        XCTAssertEqual(made.map(\.text), ["bad answer \(items[0].0)", "good answer \(items[1].0)"])
        XCTAssertTrue(made.allSatisfy { $0.source == "rankings" && $0.annotator == "ann" && $0.guidelineVersion == "v1" })
        XCTAssertEqual(passed, 1)
        // Through the stage: stored in one go before training, and not taken twice.
        var s = settings()
        s.from = .rankings
        s.epochs = 1
        let r = try SFTStage.run(store: store, settings: s, resume: false)
        XCTAssertEqual(r.made, 2)
        XCTAssertEqual(try store.demonstrations().count, 2)
        XCTAssertEqual(try RejectionSampling.fromRankings(store: store).demonstrations.count, 0, "already taken")
    }

    func testBestOfKeepsTheHighestScoringFinishedSample() throws {
        XCTAssertEqual(RejectionSampling.pick(scores: [1, 5, 3], finished: [true, false, true]), 2, "the best that stopped")
        XCTAssertEqual(RejectionSampling.pick(scores: [2, 2, 1], finished: [true, true, true]), 0, "the first of equal ones")
        XCTAssertNil(RejectionSampling.pick(scores: [1, 2], finished: [false, false]))
        // On a model whose stop tokens are half the vocabulary, so that most samples stop: each
        // kept text is the best-scoring finished sample of its prompt.
        let store = try makeRun(demonstrations: false)
        let m = try store.loadModel(store.latestModel(role: .policy)!)
        m.annotations.stopTokenIds = (0..<150).map(Int32.init)
        let stops = Set(m.annotations.stopTokens(m.tokenizer))
        let prompts = Array(try store.prompts(split: .train).prefix(6))
        var seen: [(texts: [String], finished: [Bool], scores: [Double])] = []
        let score: RejectionSampling.Scorer = { _, responses, texts in
            let scores = texts.map { Double($0.count % 7) }
            seen.append((texts, responses.map { stops.contains($0.last ?? -1) }, scores))
            return scores
        }
        let sampling = SamplingSettings(temperature: 1.5)
        let (made, passed) = try RejectionSampling.bestOf(
            4, prompts: prompts, policy: m, maxNewTokens: 12, settings: sampling, seed: 1, annotator: "best-of-test", score: score)
        XCTAssertEqual(seen.count, 6)
        XCTAssertTrue(seen.allSatisfy { $0.texts.count == 4 })
        XCTAssertEqual(made.count + passed, 6)
        XCTAssertGreaterThan(made.count, 0)
        var next = 0
        for (k, s) in seen.enumerated() {
            let finished = s.finished.indices.filter { s.finished[$0] && !s.texts[$0].trimmingCharacters(in: .whitespaces).isEmpty }
            guard let best = finished.map({ s.scores[$0] }).max() else { continue }
            let d = made[next]
            next += 1
            XCTAssertEqual(d.promptId, prompts[k].id)
            XCTAssertEqual(d.source, "best-of:4")
            XCTAssertEqual(d.annotator, "best-of-test")
            let i = try XCTUnwrap(s.texts.firstIndex(of: d.text))
            XCTAssertTrue(s.finished[i], "a sample that stopped")
            XCTAssertEqual(s.scores[i], best, "the best-scoring one")
        }
        XCTAssertEqual(next, made.count)
        // The same seed draws the same samples.
        let again = try RejectionSampling.bestOf(
            4, prompts: prompts, policy: m, maxNewTokens: 12, settings: sampling, seed: 1, annotator: "best-of-test", score: score)
        XCTAssertEqual(again.demonstrations.map(\.text), made.map(\.text))
    }
}
