import Foundation
import XCTest

@testable import RunStore

final class JudgmentStoreTests: XCTestCase {
    /// A run with two registered policies, one eval prompt per item and a completion of each
    /// policy for it, sampled by one compare stage run.
    func makeStore(items: Int = 3) throws -> (RunStore, run: Int64, first: Int64, second: Int64, pairs: [(prompt: Int64, mine: Int64, other: Int64)])
    {
        let store = try RunStore(folder: tempRun(), create: true)
        let first = try store.registerModel(
            role: .policy, path: "checkpoints/a", sha256: "aa", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        let second = try store.registerModel(
            role: .policy, path: "checkpoints/b", sha256: "bb", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        _ = try store.addPrompts((0..<items).map { NewPrompt(text: "eval \($0)") }, split: .eval, source: nil)
        let run = try store.beginStageRun(stage: "compare", config: "{}", seed: nil)
        var pairs: [(Int64, Int64, Int64)] = []
        for p in try store.prompts() {
            try store.addCompletions(
                [first.id, second.id].map {
                    NewCompletion(
                        promptId: p.id, modelId: $0, stageRunId: run, text: "by \($0 ?? 0)", tokenIds: [1, 2], finishReason: "eos", logprobSum: 0,
                        sampling: "{}")
                })
            let ids = try store.completions(promptId: p.id).map(\.id)
            pairs.append((p.id, ids[0], ids[1]))
        }
        return (store, run, first.id, second.id, pairs)
    }

    func judgment(
        _ s: (RunStore, run: Int64, first: Int64, second: Int64, pairs: [(prompt: Int64, mine: Int64, other: Int64)]), _ i: Int,
        _ side: JudgeSide, _ verdict: JudgeVerdict, by annotator: String = "ana", at t: Double = 1
    ) -> NewJudgment {
        NewJudgment(
            stageRunId: s.run, promptId: s.pairs[i].prompt, modelId: s.first, otherModelId: s.second, completionId: s.pairs[i].mine,
            otherCompletionId: s.pairs[i].other, firstSide: side, verdict: verdict, annotator: annotator, shownAt: t - 0.5, judgedAt: t)
    }

    func testJudgmentsAreStoredOncePerAnnotatorAndItemAndUndoReplaces() throws {
        let s = try makeStore()
        let store = s.0
        let j0 = try store.submitJudgment(judgment(s, 0, .b, .a, at: 1))
        try store.submitJudgment(judgment(s, 1, .a, .tie, at: 2))
        XCTAssertEqual(try store.judgments(stageRunId: s.run, annotator: "ana").map(\.judgment.verdict), [.a, .tie])
        let back = try XCTUnwrap(store.judgments().first)
        XCTAssertEqual(back.judgment, judgment(s, 0, .b, .a, at: 1), "every field reads back")
        // A second verdict on the same item without replacing is refused, and stores nothing.
        XCTAssertThrowsError(try store.submitJudgment(judgment(s, 0, .b, .b, at: 3))) { XCTAssertTrue("\($0)".contains("already judged"), "\($0)") }
        // Another annotator may judge it.
        try store.submitJudgment(judgment(s, 0, .a, .b, by: "bo", at: 3))
        // Undo and judge again: the old one is kept, marked replaced by the new one.
        let j0b = try store.submitJudgment(judgment(s, 0, .b, .b, at: 4), replacing: j0)
        XCTAssertEqual(try store.judgments(annotator: "ana").map(\.judgment.verdict), [.tie, .b])
        let all = try store.judgments(annotator: "ana", includeReplaced: true)
        XCTAssertEqual(all.count, 3)
        XCTAssertEqual(all.first { $0.id == j0 }?.replacedBy, j0b)
        // A replaced judgment cannot be replaced again, nor can another item's judgment.
        XCTAssertThrowsError(try store.submitJudgment(judgment(s, 0, .b, .a, at: 5), replacing: j0))
        XCTAssertThrowsError(try store.submitJudgment(judgment(s, 2, .b, .a, at: 5), replacing: j0b))
        XCTAssertEqual(try store.judgments(includeReplaced: true).count, 4)
        XCTAssertEqual(try store.judgedStageRuns(), [s.run])
        // The schema refuses a model judged against itself.
        var same = judgment(s, 2, .a, .a)
        same.otherModelId = same.modelId
        XCTAssertThrowsError(try store.submitJudgment(same))
    }

    /// Decided judgments become comparisons with the sides un-blinded: the completion on the side
    /// the annotator preferred is chosen, whichever model wrote it. Ties, skips and replaced
    /// judgments give none.
    func testJudgmentComparisonsUnblindTheSides() throws {
        let s = try makeStore(items: 4)
        let store = s.0
        try store.submitJudgment(judgment(s, 0, .a, .a)) // first model on A, A preferred: first chosen
        try store.submitJudgment(judgment(s, 1, .b, .a)) // first model on B, A preferred: second chosen
        try store.submitJudgment(judgment(s, 2, .b, .b)) // first model on B, B preferred: first chosen
        let tie = try store.submitJudgment(judgment(s, 3, .a, .tie))
        try store.submitJudgment(judgment(s, 1, .a, .skip, by: "bo"))
        var pairs = try store.judgmentComparisons()
        XCTAssertEqual(pairs.map(\.chosenId), [s.pairs[0].mine, s.pairs[1].other, s.pairs[2].mine])
        XCTAssertEqual(pairs.map(\.rejectedId), [s.pairs[0].other, s.pairs[1].mine, s.pairs[2].other])
        XCTAssertEqual(pairs.map(\.promptId), [s.pairs[0].prompt, s.pairs[1].prompt, s.pairs[2].prompt])
        // The tie, judged again as B (first model on A): the second model's completion chosen.
        try store.submitJudgment(judgment(s, 3, .a, .b, at: 2), replacing: tie)
        pairs = try store.judgmentComparisons()
        XCTAssertEqual(pairs.last?.chosenId, s.pairs[3].other)
        XCTAssertEqual(pairs.count, 4)
    }

    /// A version-3 database (demonstrations, no judgments) migrates to a judgments table that
    /// keeps one current verdict per annotator and item.
    func testAVersion3RunMigratesToTheJudgmentsTable() throws {
        let dir = tempRun()
        let path = dir.appendingPathComponent(RunStore.databaseName).path
        do {
            let c = try Connection(path: path, create: true)
            for m in Schema.migrations.prefix(3) { try c.execute(m.sql) }
            try c.execute("PRAGMA user_version = 3")
            try c.run("INSERT INTO prompts (text, split, created_at) VALUES ('kept', 'eval', 1)")
        }
        let store = try RunStore(folder: dir)
        XCTAssertEqual(store.schemaVersion, Schema.currentVersion)
        XCTAssertEqual(try store.prompts().map(\.text), ["kept"])
        XCTAssertEqual(try store.judgments().count, 0)
        XCTAssertEqual(try store.db.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'judgments_current'"), 1)
    }
}
