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
}

/// A run with a tiny tokenizer (the same as `rewardRun` in RewardTrainingTests).
private func rewardRun(name: String = #function) throws -> (RunStore, Tokenizer) {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
        "rlhf-rm-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    let store = try RunStore(folder: dir, create: true)
    let tok = try BPETrainer.train(corpus: "kind answers and rude answers to questions", vocabSize: 280)
    return (store, tok)
}
