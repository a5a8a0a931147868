import DPO
import Foundation
import TransformerCore
import XCTest

@testable import RewardTraining
@testable import RunStore

/// What reward training and DPO both read from a run database.
final class RewardAndDPODataTests: XCTestCase {
    /// Stored token ids outside the vocabulary (a damaged or foreign run database) are an error
    /// naming the completion, for reward training and DPO alike, never a crash in the model.
    func testStoredTokenIdsOutsideTheVocabularyAreRefused() throws {
        let (store, tok) = try rewardRun()
        _ = try store.addPrompts([NewPrompt(text: "p")], split: .train, source: nil)
        let pid = try store.prompts().first!.id
        let run = try store.beginStageRun(stage: "test", config: "{}", seed: nil)
        try store.addCompletions(
            [[5, 6], [7, Int32(tok.count)]].map {
                NewCompletion(
                    promptId: pid, modelId: nil, stageRunId: run, text: "x", tokenIds: $0, finishReason: "length", logprobSum: nil, sampling: "{}")
            })
        let ids = try store.completions(promptId: pid).map(\.id)
        try store.submitRanking(
            NewRanking(promptId: pid, modelId: nil, annotator: "a", shownOrder: ids, ranks: [1, 2], status: .ranked, startedAt: 0, submittedAt: 1))
        XCTAssertThrowsError(try RewardData.examples(store: store, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 64, useStoredTokens: true))
        { e in
            XCTAssertTrue("\(e)".contains("completion #\(ids[1]) holds token id \(tok.count), outside the tokenizer's"), "\(e)")
        }
        XCTAssertThrowsError(try DPOData.examples(store: store, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 64)) { e in
            XCTAssertTrue("\(e)".contains("completion #\(ids[1]) holds token id"), "\(e)")
        }
        // Re-encoding from text (as for imported pairs) does not read the stored ids.
        XCTAssertEqual(
            try RewardData.examples(store: store, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 64, useStoredTokens: false).count, 1)
    }

    /// With `withJudgments`, each decided human judgment is one more example of two completions,
    /// the one on the side the annotator preferred chosen (un-blinded through the side the first
    /// model was shown on); ties, skips and replaced verdicts add none, and without the flag
    /// judgments add nothing.
    func testJudgmentsJoinTheRewardDataWithTheSidesUnblinded() throws {
        let (store, tok) = try rewardRun()
        let first = try store.registerModel(role: .policy, path: "a", sha256: "a", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        let second = try store.registerModel(role: .policy, path: "b", sha256: "b", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        _ = try store.addPrompts((0..<4).map { NewPrompt(text: "question \($0)") }, split: .eval, source: nil)
        let run = try store.beginStageRun(stage: "compare", config: "{}", seed: nil)
        var items: [(prompt: Int64, mine: Int64, other: Int64)] = []
        for p in try store.prompts() {
            try store.addCompletions(
                [(first.id, "kind answers"), (second.id, "rude answers")].map {
                    NewCompletion(
                        promptId: p.id, modelId: $0.0, stageRunId: run, text: $0.1, tokenIds: [], finishReason: "eos", logprobSum: nil, sampling: "{}"
                    )
                })
            let ids = try store.completions(promptId: p.id).map(\.id)
            items.append((p.id, ids[0], ids[1]))
        }
        func judge(_ i: Int, _ side: JudgeSide, _ verdict: JudgeVerdict, replacing: Int64? = nil) throws -> Int64 {
            try store.submitJudgment(
                NewJudgment(
                    stageRunId: run, promptId: items[i].prompt, modelId: first.id, otherModelId: second.id, completionId: items[i].mine,
                    otherCompletionId: items[i].other, firstSide: side, verdict: verdict, annotator: "ana", shownAt: 0, judgedAt: Double(i)),
                replacing: replacing)
        }
        _ = try judge(0, .a, .a) // the first model's completion was on A, A preferred
        _ = try judge(1, .b, .a) // the second model's completion was on A, A preferred
        let tie = try judge(2, .b, .tie)
        _ = try judge(3, .a, .skip)
        _ = try judge(2, .b, .b, replacing: tie) // undone, then the first model's side (B) preferred
        XCTAssertEqual(
            try RewardData.examples(store: store, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 64, useStoredTokens: true).count, 0)
        let examples = try RewardData.examples(
            store: store, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 64, useStoredTokens: true, withJudgments: true)
        XCTAssertEqual(examples.map(\.promptId), [items[0].prompt, items[1].prompt, items[2].prompt])
        XCTAssertEqual(examples.map { $0.completionIds[$0.pairs[0].chosen] }, [items[0].mine, items[1].other, items[2].mine])
        XCTAssertEqual(examples.map { $0.completionIds[$0.pairs[0].rejected] }, [items[0].other, items[1].mine, items[2].other])
        XCTAssertTrue(examples.allSatisfy { $0.pairs.count == 1 && $0.judgmentId != nil && $0.rankingId == 0 })
        // Each sequence is its prompt followed by that completion ("kind answers" by the first model).
        let c = try store.completions(ids: [items[1].mine, items[1].other])
        func sequence(_ id: Int64) throws -> [Int32] {
            try RewardData.sequence(
                prompt: "question 1", completion: c[id]!, tokenizer: tok, annotations: ModelAnnotations(), nCtx: 64, useStoredTokens: true)
        }
        XCTAssertEqual(examples[1].sequences[examples[1].pairs[0].chosen], try sequence(items[1].other))
        XCTAssertEqual(examples[1].sequences[examples[1].pairs[0].rejected], try sequence(items[1].mine))
        XCTAssertNotEqual(try sequence(items[1].other), try sequence(items[1].mine))
    }
}

/// A run with a tiny tokenizer (the same as `rewardRun` in RewardTrainingTests).
private func rewardRun(name: String = #function) throws -> (RunStore, Tokenizer) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
        "rlhf-rm-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    let store = try RunStore(folder: dir, create: true)
    let tok = try BPETrainer.train(corpus: "kind answers and rude answers to questions", vocabSize: 280)
    return (store, tok)
}
