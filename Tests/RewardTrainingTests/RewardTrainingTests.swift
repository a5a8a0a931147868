import Foundation
import TransformerCore
import XCTest

@testable import RewardTraining
@testable import RunStore

final class RankingLossTests: XCTestCase {
    /// The gradient with respect to the rewards, against central differences of a plain formula.
    func testLossAndGradientAgainstFiniteDifferences() {
        let rewards: [Float] = [0.3, -1.2, 2.0, 0.1]
        let pairs = [
            RankingExample.Pair(chosen: 2, rejected: 0), .init(chosen: 2, rejected: 1), .init(chosen: 0, rejected: 1), .init(chosen: 3, rejected: 1),
        ]
        func plain(_ r: [Double], margin: Double) -> Double {
            pairs.map { -log(1 / (1 + exp(-(r[$0.chosen] - r[$0.rejected] - margin)))) }.reduce(0, +) / Double(pairs.count)
        }
        for margin: Float in [0, 0.5] {
            let (loss, grad) = RankingLoss.lossAndGradient(rewards: rewards, pairs: pairs, margin: margin, weight: 0.25)
            XCTAssertEqual(loss, plain(rewards.map(Double.init), margin: Double(margin)), accuracy: 1e-12)
            for i in 0..<rewards.count {
                var up = rewards.map(Double.init), down = up
                up[i] += 1e-5; down[i] -= 1e-5
                let numeric = 0.25 * (plain(up, margin: Double(margin)) - plain(down, margin: Double(margin))) / 2e-5
                XCTAssertEqual(Double(grad[i]), numeric, accuracy: 1e-6, "reward \(i)")
            }
        }
        XCTAssertEqual(RankingLoss.negLogSigmoid(1000), 0, accuracy: 1e-12)
        XCTAssertEqual(RankingLoss.negLogSigmoid(-1000), 1000, accuracy: 1e-9)
    }

    /// Parameter gradients of a training step through the whole model, against central
    /// differences of the loss computed by forward passes only and the plain formula.
    func testModelGradientsAgainstFiniteDifferences() {
        let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 8, nCtx: 16, vocabSize: 13)
        let model = TransformerModel(config: cfg, scalarHead: true)
        model.initialize(seed: 4)
        var rng = SeededRandom(seed: 8)
        for slot in model.layout.slots { let t = model.tensor(slot.name); for i in 0..<t.count { t[i] += 0.2 * rng.normal() } }
        let runner = ScalarHeadRunner(model: model, rows: 4)
        // Two rankings: one of three completions (with a tie between two), one of two.
        let a = RankingExample(
            rankingId: 1, promptId: 1, completionIds: [1, 2, 3], sequences: [[1, 2, 3, 4], [1, 2, 5], [1, 2, 6, 7, 8]],
            pairs: [.init(chosen: 0, rejected: 1), .init(chosen: 0, rejected: 2)])
        let b = RankingExample(
            rankingId: 2, promptId: 2, completionIds: [4, 5], sequences: [[9, 10, 11], [9, 12]], pairs: [.init(chosen: 1, rejected: 0)])
        let margin: Float = 0.3
        func loss() -> Double {
            var total = 0.0
            for ex in [a, b] {
                let r = runner.scores(ex.sequences).map(Double.init)
                total += ex.pairs.map { log(1 + exp(-(r[$0.chosen] - r[$0.rejected] - Double(margin)))) }.reduce(0, +) / Double(ex.pairs.count)
            }
            return total / 2
        }
        let step = RewardStage.trainStep([a, b], runner: runner, margin: margin)
        XCTAssertEqual(step.loss, loss(), accuracy: 1e-5)
        let grads = Array(UnsafeBufferPointer(start: model.gradients.pointer, count: model.layout.count))
        var checked = 0
        for slot in model.layout.slots {
            let g = Array(grads[slot.offset..<(slot.offset + slot.count)])
            for i in [g.indices.max { abs(g[$0]) < abs(g[$1]) }!, rng.int(below: slot.count)] {
                let p = model.parameters.pointer + slot.offset + i
                let saved = p.pointee
                p.pointee = saved + 1e-2; let up = loss()
                p.pointee = saved - 1e-2; let down = loss()
                p.pointee = saved
                let numeric = (up - down) / 2e-2
                XCTAssertLessThanOrEqual(
                    abs(numeric - Double(g[i])), 1e-3 + 2e-2 * max(abs(numeric), abs(Double(g[i]))),
                    "\(slot.name)[\(i)]: analytic \(g[i]), numeric \(numeric)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, model.layout.slots.count * 2)
    }
}

/// A run with a tiny tokenizer; the tests add prompts, completions and rankings by hand.
func rewardRun(name: String = #function) throws -> (RunStore, Tokenizer) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
        "rlhf-rm-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    let store = try RunStore(folder: dir, create: true)
    let tok = try BPETrainer.train(corpus: "kind answers and rude answers to questions", vocabSize: 280)
    return (store, tok)
}

final class RewardDataTests: XCTestCase {
    func addItem(_ store: RunStore, prompt: String, texts: [String], rankings: [(String, [Int])]) throws {
        _ = try store.addPrompts([NewPrompt(text: prompt)], split: .train, source: nil)
        let pid = try store.prompts().first { $0.text == prompt }!.id
        let run = try store.beginStageRun(stage: "test", config: "{}", seed: nil)
        try store.addCompletions(
            texts.map {
                NewCompletion(
                    promptId: pid, modelId: nil, stageRunId: run, text: $0, tokenIds: [], finishReason: "eos", logprobSum: nil, sampling: "{}")
            })
        let ids = try store.completions(promptId: pid).map(\.id)
        for (who, ranks) in rankings {
            try store.submitRanking(
                NewRanking(promptId: pid, modelId: nil, annotator: who, shownOrder: ids, ranks: ranks, status: .ranked, startedAt: 0, submittedAt: 1))
        }
    }

    func testTiesGiveNoPairsAndSequencesAreTemplated() throws {
        let (store, tok) = try rewardRun()
        try addItem(store, prompt: "p1", texts: ["a", "b", "c"], rankings: [("x", [1, 1, 2]), ("y", [1, 1, 1])])
        let notes = ModelAnnotations(promptTemplate: "Q: {prompt}\nA:")
        let ex = try RewardData.examples(store: store, tokenizer: tok, annotations: notes, nCtx: 64, useStoredTokens: true)
        XCTAssertEqual(ex.count, 1, "a ranking of ties only gives no pairs and no example")
        XCTAssertEqual(ex[0].pairs.count, 2)
        XCTAssertEqual(ex[0].sequences[0], tok.encode("Q: p1\nA:") + tok.encode("a") + [tok.eosId!])
        let short = try RewardData.examples(store: store, tokenizer: tok, annotations: notes, nCtx: 4, useStoredTokens: true)
        XCTAssertEqual(short[0].sequences[0].count, 4, "too long: the start of the prompt is dropped")
        XCTAssertEqual(short[0].sequences[0].last, tok.eosId)
    }

    func testSplitNeverLeaksAPrompt() throws {
        let (store, _) = try rewardRun()
        for i in 0..<30 { try addItem(store, prompt: "prompt \(i)", texts: ["a", "b"], rankings: [("x", [1, 2]), ("y", [2, 1])]) }
        let tok = try BPETrainer.train(corpus: "ab", vocabSize: 258)
        let ex = try RewardData.examples(store: store, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 32, useStoredTokens: true)
        XCTAssertEqual(ex.count, 60)
        for seed: UInt64 in [0, 1, 2] {
            let (train, val) = RewardData.split(ex, fraction: 0.2, seed: seed)
            XCTAssertTrue(Set(train.map(\.promptId)).isDisjoint(with: val.map(\.promptId)))
            XCTAssertEqual(train.count + val.count, 60)
            XCTAssertEqual(Set(val.map(\.promptId)).count, 6)
            XCTAssertEqual(val.count, 12, "both annotators' rankings of a held-out prompt are held out")
        }
        XCTAssertEqual(
            RewardData.split(ex, fraction: 0.2, seed: 1).validation.map(\.rankingId),
            RewardData.split(ex, fraction: 0.2, seed: 1).validation.map(\.rankingId))
        XCTAssertNotEqual(
            RewardData.split(ex, fraction: 0.2, seed: 1).validation.map(\.rankingId),
            RewardData.split(ex, fraction: 0.2, seed: 2).validation.map(\.rankingId))
    }

    func testNoComparisonsIsAClearError() throws {
        let (store, tok) = try rewardRun()
        let m = TransformerModel(config: ModelConfig(nLayer: 1, nHead: 1, nEmbd: 8, nCtx: 16, vocabSize: tok.count))
        try ModelFolder.save(m, tokenizer: tok, to: store.folder.appendingPathComponent("checkpoints/base"))
        try store.registerModel(
            role: .base, path: "checkpoints/base", sha256: SHA256.hex(of: store.folder.appendingPathComponent("checkpoints/base/model.safetensors")),
            config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        XCTAssertThrowsError(try RewardStage.run(store: store, options: RewardConfig())) { e in
            XCTAssertTrue("\(e)".contains("no comparisons"), "\(e)")
        }
        try addItem(store, prompt: "only", texts: ["a", "b"], rankings: [("x", [1, 2])])
        XCTAssertThrowsError(try RewardStage.run(store: store, options: RewardConfig())) { e in XCTAssertTrue("\(e)".contains("at least 2"), "\(e)") }
        XCTAssertEqual(try store.stageRuns(stage: "train-reward").count, 0, "nothing was started")
    }
}
