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
}
