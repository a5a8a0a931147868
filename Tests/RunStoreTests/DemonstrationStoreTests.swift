import Foundation
import XCTest

@testable import RunStore

final class DemonstrationStoreTests: XCTestCase {
    /// A version-2 database (what the previous release wrote), with a ranking in it, opens as the
    /// current schema with every row kept and the new tables empty.
    func testAVersion2RunMigratesWithItsDataKept() throws {
        let dir = tempRun()
        let path = dir.appendingPathComponent(RunStore.databaseName).path
        do {
            let c = try Connection(path: path, create: true)
            try c.execute(Schema.version1.sql)
            try c.execute(Schema.version2.sql)
            try c.execute("PRAGMA user_version = 2")
            try c.run("INSERT INTO prompts (text, split, created_at) VALUES ('kept', 'train', 1)")
            try c.run("INSERT INTO models (role, path, sha256, config, created_at) VALUES ('base', 'checkpoints/base', 'ab', '{}', 1)")
        }
        let store = try RunStore(folder: dir)
        XCTAssertEqual(store.schemaVersion, Schema.currentVersion)
        XCTAssertEqual(try store.prompts().map(\.text), ["kept"])
        XCTAssertEqual(try store.demonstrations().count, 0)
        XCTAssertEqual(try store.db.scalarInt("SELECT count(*) FROM judgments"), 0)
        XCTAssertNil(try store.db.scalarText("SELECT origin FROM models"))
    }

    func testADemonstrationReplacesTheDraftInOneTransaction() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        _ = try store.addPrompts([NewPrompt(text: "Say hi")], split: .train, source: nil)
        let pid = try store.prompts()[0].id
        try store.saveDraft(DemonstrationDraft(promptId: pid, annotator: "ana", text: "Hel", fromCompletionId: nil, startedAt: 1, savedAt: 2))
        try store.saveDraft(DemonstrationDraft(promptId: pid, annotator: "ana", text: "Hello", fromCompletionId: nil, startedAt: 1, savedAt: 3))
        XCTAssertEqual(try store.drafts(annotator: "ana").map(\.text), ["Hello"])
        XCTAssertEqual(try store.drafts(annotator: "bo").count, 0)

        let id = try store.submitDemonstration(NewDemonstration(promptId: pid, text: "Hello!", annotator: "ana", startedAt: 1, submittedAt: 4))
        XCTAssertEqual(try store.drafts(annotator: "ana").count, 0)
        let edited = try store.submitDemonstration(
            NewDemonstration(promptId: pid, text: "Hello there!", annotator: "ana", startedAt: 5, submittedAt: 6), replacing: id)
        XCTAssertEqual(try store.demonstrations().map(\.id), [edited])
        XCTAssertEqual(try store.demonstrations(includeReplaced: true).map(\.replacedBy), [edited, nil])
        // Replacing an already replaced one fails and stores nothing.
        XCTAssertThrowsError(
            try store.submitDemonstration(
                NewDemonstration(promptId: pid, text: "again", annotator: "ana", startedAt: 7, submittedAt: 8), replacing: id))
        XCTAssertEqual(try store.demonstrations(includeReplaced: true).count, 2)
        // Blank text is refused.
        XCTAssertThrowsError(
            try store.submitDemonstration(NewDemonstration(promptId: pid, text: " \n", annotator: "ana", startedAt: 1, submittedAt: 2)))
    }

    /// `rlhf label --write` shows prompts without a current demonstration a person wrote or
    /// imported; rejection-sampled ones (rankings, best-of:N) and replaced ones do not count.
    func testPromptsWithoutDemonstrationCountOnlyHumanAndImportedOnes() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        _ = try store.addPrompts(["a", "b", "c", "d"].map { NewPrompt(text: $0) }, split: .train, source: nil)
        _ = try store.addPrompts([NewPrompt(text: "held out")], split: .eval, source: nil)
        let ids = Dictionary(uniqueKeysWithValues: try store.prompts().map { ($0.text, $0.id) })
        XCTAssertEqual(try store.promptsWithoutDemonstration().map(\.text), ["a", "b", "c", "d", "held out"])
        try store.submitDemonstration(NewDemonstration(promptId: ids["a"]!, text: "A", annotator: "ana", startedAt: 1, submittedAt: 2))
        try store.submitDemonstration(
            NewDemonstration(promptId: ids["b"]!, text: "B", annotator: "sft", source: "rankings", startedAt: 1, submittedAt: 2))
        try store.submitDemonstration(
            NewDemonstration(promptId: ids["c"]!, text: "C", annotator: "sft", source: "best-of:4", startedAt: 1, submittedAt: 2))
        _ = try store.importDemonstrations([ImportedDemonstration(prompt: "d", text: "D")], annotator: "import", source: "f.jsonl")
        XCTAssertEqual(try store.promptsWithoutDemonstration().map(\.text), ["b", "c", "held out"])
        XCTAssertEqual(try store.promptsWithoutDemonstration(split: .eval).map(\.text), ["held out"])
        XCTAssertEqual(try store.demonstrations().last?.demonstration.source, "import")
    }

    /// An import lands whole or not at all; new prompts join the train split; the annotator, the
    /// guideline version, the conversation and the origin the file gave are kept.
    func testImportIsOneTransaction() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        _ = try store.addPrompts([NewPrompt(text: "known")], split: .eval, source: nil)
        var conv = ImportedDemonstration(
            prompt: "new", text: "answer", messages: #"[{"role":"user","content":"new"},{"role":"assistant","content":"answer"}]"#)
        conv.annotator = "bo"; conv.guidelineVersion = "abc"; conv.origin = #"{"run":"r"}"#
        XCTAssertThrowsError(
            try store.importDemonstrations(
                [ImportedDemonstration(prompt: "known", text: "fine"), conv, ImportedDemonstration(prompt: "x", text: " ")],
                annotator: "import", source: "f")
        ) { XCTAssertTrue("\($0)".contains("demonstration 3 has no text"), "\($0)") }
        XCTAssertEqual(try store.demonstrations().count, 0)
        XCTAssertEqual(try store.prompts().count, 1)
        let r = try store.importDemonstrations([ImportedDemonstration(prompt: "known", text: "fine"), conv], annotator: "import", source: "f")
        XCTAssertEqual(r.demonstrations, 2); XCTAssertEqual(r.newPrompts, 1)
        let d = try store.demonstrations().map(\.demonstration)
        XCTAssertEqual(d.map(\.annotator), ["import", "bo"])
        XCTAssertEqual(d[1].messages, conv.messages)
        XCTAssertEqual(d[1].guidelineVersion, "abc")
        XCTAssertEqual(d[1].origin, #"{"run":"r"}"#)
        XCTAssertEqual(try store.prompt(id: d[1].promptId)?.split, .train)
        XCTAssertEqual(try store.prompt(id: d[0].promptId)?.split, .eval, "a known prompt keeps its split")
    }
}
