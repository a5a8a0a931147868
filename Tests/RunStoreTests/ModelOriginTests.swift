import Foundation
import XCTest

@testable import RunStore

/// `models.origin` (schema 5): the Hub repository, revision and commit a model came from.
final class ModelOriginTests: XCTestCase {
    func testAHubModelsOriginIsStoredAndReadBack() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        let commit = "0123456789abcdef0123456789abcdef01234567"
        let origin = ModelOrigin(repo: "HuggingFaceTB/SmolLM2-135M-Instruct", revision: "main", commit: commit)
        let base = try store.registerModel(
            role: .base, path: "checkpoints/base", sha256: "ab", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil,
            origin: origin)
        let policy = try store.registerModel(
            role: .policy, path: "checkpoints/base", sha256: "ab", config: "{}", promptTemplate: nil, parentId: base.id, stageRunId: nil)
        XCTAssertEqual(try store.modelOrigin(id: base.id), origin)
        XCTAssertNil(try store.modelOrigin(id: policy.id), "a model from a folder or a stage has no origin")
        // Stored as JSON with sorted keys, readable by any SQLite client.
        XCTAssertEqual(
            try store.db.scalarText("SELECT origin FROM models WHERE id = \(base.id)"),
            #"{"commit":"\#(commit)","repo":"HuggingFaceTB/SmolLM2-135M-Instruct","revision":"main"}"#)
        // A damaged value is an error, not a silent nil.
        try store.db.run("UPDATE models SET origin = '{\"repo\": 3}' WHERE id = ?", [.int(base.id)])
        XCTAssertThrowsError(try store.modelOrigin(id: base.id))
        XCTAssertNil(ModelOrigin(json: "not json"))
    }
}
