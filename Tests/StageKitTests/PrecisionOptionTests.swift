import Foundation
import RunStore
import StageKit
import TransformerCore
import XCTest

/// A config with `--precision`, Codable the way Swift writes it, as the stages' configs are.
struct PrecisionToy: StageConfig, Equatable {
    var steps = 3
    var precision = Precision.f32

    static let options: [ConfigOption<PrecisionToy>] = [
        .int("--steps", \.steps, range: 1...10, "steps to take"),
        PrecisionOption.option(\.precision),
    ]
}

final class PrecisionOptionTests: XCTestCase {
    func parse(_ values: [String: String]) throws -> PrecisionToy { try PrecisionToy.parse(GivenOptions(values: values)) }

    func message(_ body: () throws -> Any) -> String {
        do { _ = try body(); return "no error" } catch { return "\(error)" }
    }

    func testValuesAndTheDefault() throws {
        XCTAssertEqual(try parse([:]).precision, .f32, "f32 unless asked")
        XCTAssertEqual(try parse(["--precision": "f32"]).precision, .f32)
        XCTAssertEqual(try parse(["--precision": "bf16"]).precision, .bf16)
        XCTAssertEqual(try parse(["--precision": "bf16", "--steps": "4"]), PrecisionToy(steps: 4, precision: .bf16))
        XCTAssertTrue(PrecisionToy.valuedOptions.contains("--precision"))
        XCTAssertEqual(try PrecisionOption.parse(GivenOptions(values: ["--precision": "bf16"])), .bf16)
        XCTAssertEqual(try PrecisionOption.parse(GivenOptions()), .f32)
    }

    func testABadValueNamesTheValuesAllowed() {
        XCTAssertEqual(message { try self.parse(["--precision": "fp16"]) }, "--precision must be f32 or bf16, got 'fp16'")
        XCTAssertEqual(message { try self.parse(["--precision": "BF16"]) }, "--precision must be f32 or bf16, got 'BF16'")
        XCTAssertEqual(message { try self.parse(["--precision": ""]) }, "--precision must be f32 or bf16, got ''")
        XCTAssertTrue(message { try self.parse(["--precision": "fp16"]) }.contains("f32 or bf16"))
        XCTAssertEqual(message { try PrecisionOption.parse("half") }, "--precision must be f32 or bf16, got 'half'")
    }

    func testAListForBench() throws {
        XCTAssertEqual(try PrecisionOption.parseList("f32,bf16"), [.f32, .bf16])
        XCTAssertEqual(try PrecisionOption.parseList("bf16, f32"), [.bf16, .f32], "in the order given")
        XCTAssertEqual(try PrecisionOption.parseList("bf16,bf16"), [.bf16], "each once")
        XCTAssertEqual(message { try PrecisionOption.parseList("f32,fp8") }, "--precision must be f32 or bf16, got 'fp8'")
        XCTAssertEqual(message { try PrecisionOption.parseList(",") }, "--precision needs at least one of f32 or bf16")
    }

    /// The help row comes from the table, with the type's default.
    func testHelp() {
        let help = PrecisionToy.help(column: 20)
        XCTAssertTrue(help.contains("  --precision P     f32, or bf16: the operands of the matrix products rounded to\n"), help)
        XCTAssertTrue(help.contains("(autocast) [f32]"), help)
    }

    /// Stored under "precision"; settings stored before the option existed read as f32.
    func testStoredKeyAndOldSettings() throws {
        let json = try RunStore.json(PrecisionToy(steps: 2, precision: .bf16))
        let object = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        XCTAssertEqual(object["precision"] as? String, "bf16")
        XCTAssertTrue(try RunStore.json(PrecisionToy()).contains("\"precision\":\"f32\""), "f32 is stored too")
        XCTAssertEqual(try JSONDecoder().decode(PrecisionToy.self, from: Data(#"{"steps":5}"#.utf8)), PrecisionToy(steps: 5, precision: .f32))
        XCTAssertEqual(
            try JSONDecoder().decode(PrecisionToy.self, from: Data(#"{"steps":5,"precision":"bf16"}"#.utf8)), PrecisionToy(steps: 5, precision: .bf16)
        )
        XCTAssertThrowsError(
            try JSONDecoder().decode(PrecisionToy.self, from: Data(#"{"steps":5,"precision":"fp16"}"#.utf8)), "an unknown value is an error")
    }

    /// What `--resume` reads back is the precision the run started with.
    func testResumeReadsThePrecisionBack() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("stagekit-precision-\(UUID().uuidString)")
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let store = try RunStore(folder: dir, create: true)
        let started = try parse(["--precision": "bf16"])
        let id = try store.beginStageRun(stage: "toy", config: started, seed: 0)
        try store.finishStageRun(id, status: .interrupted)
        struct State: Codable {}
        let (rid, config, _) = try store.resumableStageRun("toy", label: "Toy", command: "rlhf toy", config: PrecisionToy.self, state: State.self)
        XCTAssertEqual(rid, id)
        XCTAssertEqual(config.precision, .bf16)
        XCTAssertTrue(try XCTUnwrap(try store.stageRuns(stage: "toy").first).config.contains("\"precision\":\"bf16\""))
    }
}
