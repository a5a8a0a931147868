import Foundation
import StageKit
import TransformerCore
import XCTest

@testable import Labeling
@testable import RunStore

/// A run with prompts and completions written straight into the store (no model needed).
func labelingRun(items: Int, perItem: Int, texts: ((Int, Int) -> String)? = nil, name: String = #function) throws -> RunStore {
    let dir = FileManager.default.temporaryDirectory
        .appendingPathComponent("rlhf-label-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    let store = try RunStore(folder: dir, create: true)
    let run = try store.beginStageRun(stage: "generate", config: "{}", seed: nil)
    let m = try store.registerModel(
        role: .policy, path: "checkpoints/none", sha256: "0", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: run)
    _ = try store.addPrompts((0..<items).map { NewPrompt(text: "prompt \($0)") }, split: .train, source: nil)
    var rows: [NewCompletion] = []
    for p in try store.prompts() {
        for k in 0..<perItem {
            rows.append(
                NewCompletion(
                    promptId: p.id, modelId: m.id, stageRunId: run, text: texts?(Int(p.id), k) ?? "reply \(k) to \(p.text)",
                    tokenIds: [], finishReason: "eos", logprobSum: 0, sampling: "{}"))
        }
    }
    try store.addCompletions(rows)
    return store
}

final class LabelStorageTests: XCTestCase {
    func testComparisonsAreStrictPairsAndTiesGiveNone() {
        let pairs = RunStore.comparisons(shownOrder: [10, 11, 12, 13], ranks: [2, 1, 2, 3])
        XCTAssertEqual(pairs.map { "\($0.chosen)>\($0.rejected):\($0.gap)" }, ["10>13:1", "11>10:1", "11>12:1", "11>13:2", "12>13:1"])
        XCTAssertTrue(RunStore.comparisons(shownOrder: [1, 2], ranks: [1, 1]).isEmpty)
    }

    func testARankingReadsBackExactlyAndAnEditReplacesIt() throws {
        let store = try labelingRun(items: 2, perItem: 3)
        let item = try store.labelItems()[0]
        let shown = [item.completionIds[2], item.completionIds[0], item.completionIds[1]]
        let r = NewRanking(
            promptId: item.promptId, modelId: item.modelId, annotator: "alice", shownOrder: shown, ranks: [1, 2, 1],
            status: .ranked, guidelineVersion: "abc123", source: "human", startedAt: 100.25, submittedAt: 107.5)
        let id = try store.submitRanking(r)
        XCTAssertEqual(try store.ranking(id: id)?.ranking, r)
        XCTAssertEqual(
            try store.comparisons().map { [$0.chosenId, $0.rejectedId] },
            [[shown[0], shown[1]], [shown[2], shown[1]]].sorted { $0.lexicographicallyPrecedes($1) })
        var edit = r; edit.ranks = [3, 1, 2]; edit.submittedAt = 120
        let id2 = try store.submitRanking(edit, replacing: id)
        XCTAssertEqual(try store.ranking(id: id)?.replacedBy, id2)
        XCTAssertEqual(try store.rankings(annotator: "alice").map(\.id), [id2])
        XCTAssertEqual(try store.rankings(includeReplaced: true).count, 2)
        XCTAssertEqual(try store.comparisons().count, 3)
        XCTAssertTrue(try store.comparisons().allSatisfy { $0.rankingId == id2 })
        XCTAssertThrowsError(try store.submitRanking(edit, replacing: id), "a ranking is replaced once")
        var bad = r; bad.ranks = [1, 2]
        XCTAssertThrowsError(try store.submitRanking(bad))
        XCTAssertEqual(try store.counts().rankings, 1)
    }

    func testQueueSkipsWhatThisAnnotatorDidAndShufflesPerAnnotator() throws {
        let store = try labelingRun(items: 4, perItem: 5)
        let alice = try LabelQueue(store: store, annotator: "alice", order: .random)
        XCTAssertEqual(try alice.pending().count, 4)
        let items = alice.items
        try store.submitRanking(
            NewRanking(
                promptId: items[0].promptId, modelId: items[0].modelId, annotator: "alice",
                shownOrder: alice.shownOrder(items[0]), ranks: nil, status: .skipped, startedAt: 0, submittedAt: 1))
        try store.submitRanking(
            NewRanking(
                promptId: items[1].promptId, modelId: items[1].modelId, annotator: "alice",
                shownOrder: alice.shownOrder(items[1]), ranks: nil, status: .flagged, reason: "odd", startedAt: 0, submittedAt: 1))
        XCTAssertEqual(try alice.pending().map(\.promptId), [items[2].promptId, items[3].promptId])
        let bob = try LabelQueue(store: store, annotator: "bob", order: .random)
        XCTAssertEqual(try bob.pending().count, 4, "other annotators still see every item")
        XCTAssertEqual(alice.shownOrder(items[2]), alice.shownOrder(items[2]), "seeded: a restart shows the same order")
        XCTAssertEqual(Set(alice.shownOrder(items[2])), Set(items[2].completionIds))
        let orders = (0..<4).map { alice.shownOrder(items[$0]) } + (0..<4).map { bob.shownOrder(items[$0]) }
        XCTAssertGreaterThan(Set(orders).count, 4, "orders differ between items and annotators")
        XCTAssertEqual(try LabelQueue(store: store, annotator: "c", order: .fixed).shownOrder(items[2]), items[2].completionIds)
    }

    func testSimulatedLexiconLabeler() throws {
        let lex = Lexicon(positive: ["kind", "thanks"], negative: ["stupid"])
        XCTAssertEqual(lex.score("Thanks, that is KIND. Stupid? kind!"), 2)
        var rng = SeededRandom(seed: 1)
        XCTAssertEqual(SimulatedLabeler.ranks(scores: [1, 3, 1, 0], noise: 0, rng: &rng), [2, 1, 2, 3])
        // Scores [1, 3, 2] order the completions 2nd, 3rd, 1st. Noise 1 swaps every adjacent pair in turn:
        // (2nd, 3rd, 1st) → (3rd, 2nd, 1st) → (3rd, 1st, 2nd), so the ranks become [2, 3, 1].
        XCTAssertEqual(SimulatedLabeler.ranks(scores: [1, 3, 2], noise: 1, rng: &rng), [2, 3, 1])
        let texts = ["stupid stupid", "thanks", "kind thanks", "nothing"]
        let store = try labelingRun(items: 3, perItem: 4, texts: { _, k in texts[k] })
        let n = try SimulatedLabeler.run(
            store: store, rule: .lexicon(lex), noise: 0, seed: 0, annotator: "sim", order: .random, guidelinesVersion: "g1")
        XCTAssertEqual(n, 3)
        for r in try store.rankings() {
            let cs = try store.completions(ids: r.ranking.shownOrder)
            let best = r.ranking.shownOrder[r.ranking.ranks!.firstIndex(of: 1)!]
            XCTAssertEqual(cs[best]?.text, "kind thanks")
            XCTAssertEqual(r.ranking.source, "simulated:lexicon")
            XCTAssertEqual(r.ranking.guidelineVersion, "g1")
        }
        XCTAssertEqual(try store.comparisons().count, 3 * 6)
        XCTAssertEqual(
            try SimulatedLabeler.run(store: store, rule: .lexicon(lex), noise: 0, seed: 0, annotator: "sim", order: .random, guidelinesVersion: nil),
            0)
        let length = SimulationRule.length(target: 2)
        XCTAssertGreaterThan(length.score("two words"), length.score("one"))
        XCTAssertGreaterThan(length.score("two words"), length.score("three words here"))
    }

    func testExportImportRoundTripAndErrors() throws {
        let store = try labelingRun(items: 2, perItem: 3, texts: { p, k in "text \(p)-\(k) \"quoted\"\n\u{1B}" })
        let items = try store.labelItems()
        try store.submitRanking(
            NewRanking(
                promptId: items[0].promptId, modelId: items[0].modelId, annotator: "a",
                shownOrder: items[0].completionIds, ranks: [1, 2, 2], status: .ranked, startedAt: 0, submittedAt: 1))
        let trl = try LabelsIO.export(store: store, format: .trl)
        XCTAssertEqual(trl.lines, 2)
        let pairs = try LabelsIO.parseTRL(Data(trl.text.utf8), name: "x")
        XCTAssertEqual(pairs.map(\.prompt), ["prompt 0", "prompt 0"])
        XCTAssertEqual(pairs[0].chosen, "text 1-0 \"quoted\"\n\u{1B}")
        let rankings = try LabelsIO.export(store: store, format: .rankings)
        XCTAssertEqual(rankings.lines, 1)
        let obj = try JSONSerialization.jsonObject(with: Data(rankings.text.utf8)) as! [String: Any]
        XCTAssertEqual((obj["completions"] as! [[String: Any]]).map { $0["rank"] as! Int }, [1, 2, 2])
        XCTAssertEqual(obj["run"] as? String, store.folder.lastPathComponent)
        XCTAssertEqual(obj["model_id"] as? Int, 1)

        // Into another run: each pair becomes a ranking of two.
        let other = try labelingRun(items: 1, perItem: 2)
        let run = try other.beginStageRun(stage: "label", config: "{}", seed: nil)
        let r = try other.importPairs(
            pairs + [ImportedPair(prompt: "brand new", chosen: "yes", rejected: "no")], annotator: "import", stageRunId: run, source: "x")
        XCTAssertEqual(r.rankings, 3); XCTAssertEqual(r.newPrompts, 1, "\"prompt 0\" is already in that run")
        XCTAssertEqual(try other.comparisons().count, 3)
        let back = try LabelsIO.parseTRL(Data(LabelsIO.export(store: other, format: .trl).text.utf8), name: "y")
        XCTAssertEqual(
            back.map { [$0.prompt, $0.chosen, $0.rejected] },
            (pairs + [ImportedPair(prompt: "brand new", chosen: "yes", rejected: "no")]).map { [$0.prompt, $0.chosen, $0.rejected] })
        XCTAssertEqual(back.prefix(2).map(\.origin), pairs.map(\.origin), "imported pairs keep where they came from")
        XCTAssertEqual(back.map(\.annotator), ["a", "a", "import"])

        let bad: [(String, String)] = [
            ("{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"b\"}\n{\"prompt\":\"p\",\"chosen\":\"a\"}\n", "x:2: no \"rejected\" key"),
            ("{\"prompt\":\"p\",\"chosen\":\"a\",\"rejected\":\"a\"}\n", "x:1: \"chosen\" and \"rejected\" are the same"),
            ("{\"prompt\":\"p\",\"chosen\":[{\"role\":\"user\"}],\"rejected\":\"b\"}\n", "role \"assistant\""),
            ("\n\nnot json\n", "x:3: invalid JSON"),
            ("", "no pairs"),
        ]
        for (text, needle) in bad {
            XCTAssertThrowsError(try LabelsIO.parseTRL(Data(text.utf8), name: "x")) { e in XCTAssertTrue("\(e)".contains(needle), "\(e)") }
        }
    }

    func testStatsAgainstHandComputedValues() {
        func r(_ who: String, _ item: Int64, _ shown: [Int64], _ ranks: [Int]?, _ status: RankingStatus = .ranked, secs: Double) -> NewRanking {
            NewRanking(promptId: item, modelId: 1, annotator: who, shownOrder: shown, ranks: ranks, status: status, startedAt: 0, submittedAt: secs)
        }
        let rankings = [
            // Item 1, both annotators, completions 1 2 3. a: 1>2>3. b: 2>1>3.
            r("a", 1, [1, 2, 3], [1, 2, 3], secs: 10),
            r("b", 1, [3, 1, 2], [3, 2, 1], secs: 20),
            // Item 2: a ranks 4>5=6; b ranks 4>5>6.
            r("a", 2, [4, 5, 6], [1, 2, 2], secs: 30),
            r("b", 2, [6, 5, 4], [3, 2, 1], secs: 40),
            r("a", 3, [7, 8], nil, .skipped, secs: 50),
            r("a", 4, [9, 10], nil, .flagged, secs: 60),
        ]
        let s = LabelsIO.stats(rankings)
        XCTAssertEqual(s.annotators.map(\.annotator), ["a", "b"])
        XCTAssertEqual(s.annotators[0].count, 4)
        XCTAssertEqual(s.annotators[0].skipRate, 0.25)
        XCTAssertEqual(s.annotators[0].flagRate, 0.25)
        XCTAssertEqual(s.annotators[0].medianSeconds, 40) // median of 10, 30, 50, 60
        XCTAssertEqual(s.annotators[1].medianSeconds, 30)
        XCTAssertEqual(s.sharedItems, 2)
        // Item 1 pairs (1,2) disagree, (1,3) agree, (2,3) agree; item 2: (4,5) agree, (4,6) agree, (5,6) a tie for a.
        XCTAssertEqual(s.pairwiseAgreement!, 4.0 / 5.0, accuracy: 1e-12)
        // tau-b item 1: (2 − 1)/√(3·3) = 1/3; item 2: (2 − 0)/√((3 − 1)·3) = 2/√6.
        XCTAssertEqual(s.kendallTau!, (1.0 / 3.0 + 2.0 / 6.0.squareRoot()) / 2, accuracy: 1e-12)
        // Shown first and ranked best: a item1 (1: rank 1) yes; b item1 (3: rank 3) no; a item2 yes; b item2 (6: rank 3) no.
        XCTAssertEqual(s.rankedCount, 4)
        XCTAssertEqual(s.firstShownBest, 2)
        XCTAssertEqual(s.chanceFirstBest, 1.0 / 3.0, accuracy: 1e-12)
    }
}
