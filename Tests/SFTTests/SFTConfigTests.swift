import Foundation
import StageKit
import TransformerCore
import XCTest

@testable import SFT

/// `SFTConfig`: TRL's defaults, the options' validation, and settings stored with a run read back
/// the same.
final class SFTConfigTests: XCTestCase {
    func parse(_ values: [String: String], flags: Set<String> = []) throws -> SFTConfig {
        try SFTConfig.parse(GivenOptions(values: values, flags: flags))
    }

    func testDefaultsAreTRLs() throws {
        let c = try parse([:])
        XCTAssertEqual(c.learningRate, 2e-5)
        XCTAssertEqual(c.epochs, 3)
        XCTAssertEqual(c.batch, 8)
        XCTAssertEqual(c.maxLength, 1024)
        XCTAssertEqual(c.weightDecay, 0)
        XCTAssertEqual(c.maxGradNorm, 1)
        XCTAssertEqual(c.from, .demonstrations)
        XCTAssertEqual(c.precision, .f32)
        XCTAssertNil(c.lora)
        XCTAssertFalse(c.keepReference)
        XCTAssertEqual(c.rowsPerPass, 8)
        let help = SFTConfig.help(column: 24)
        for s in ["--from SOURCE", "[demonstrations]", "--lr X", "[2e-5]", "--keep-reference", "--lora-rank R", "--precision P", "--scorer S"] {
            XCTAssertTrue(help.contains(s), s)
        }
    }

    func testOptionsAreReadAndBadOnesRefused() throws {
        let c = try parse(
            ["--from": "best-of:4", "--scorer": "lexicon", "--lexicon": "labels/lexicon", "--epochs": "2", "--lr": "1e-4", "--micro-batch": "2"],
            flags: ["--keep-reference"])
        XCTAssertEqual(c.from, .bestOf(4))
        XCTAssertEqual(c.scorer, .lexicon)
        XCTAssertTrue(c.lexicon.hasPrefix("/"), "made absolute for --resume: \(c.lexicon)")
        XCTAssertEqual(c.epochs, 2)
        XCTAssertEqual(c.learningRate, 1e-4)
        XCTAssertEqual(c.rowsPerPass, 2)
        XCTAssertTrue(c.keepReference)
        XCTAssertEqual(try parse(["--from": "rankings"]).from, .rankings)
        // LoRA trains at ten times the learning rate unless --lr is given.
        XCTAssertEqual(try parse(["--lora-rank": "4"]).learningRate, 2e-4, accuracy: 1e-12)
        XCTAssertEqual(try parse(["--lora-rank": "4", "--lr": "1e-3"]).learningRate, 1e-3)
        XCTAssertEqual(try parse(["--lora-rank": "4", "--frozen-dtype": "bf16"]).frozenDType, .bf16)
        let bad: [([String: String], String)] = [
            (["--lr": "0"], "--lr"), (["--lr": "x"], "--lr"), (["--val-fraction": "1"], "--val-fraction"),
            (["--from": "best-of:1"], "best-of"), (["--from": "best"], "--from must be"), (["--scorer": "rm"], "applies to --from best-of"),
            (["--scorer": "judge", "--from": "best-of:2"], "--scorer must be"), (["--frozen-dtype": "bf16"], "needs --lora-rank"),
            (["--epochs": "0"], "--epochs"), (["--max-length": "1"], "--max-length"), (["--precision": "f16"], "--precision"),
            (["--lora-alpha": "4"], "needs --lora-rank"),
        ]
        for (values, message) in bad {
            XCTAssertThrowsError(try parse(values), "\(values)") { e in
                XCTAssertTrue(e is ConfigError && "\(e)".contains(message), "\(values): \(e)")
            }
        }
    }

    func testStoredSettingsReadBackTheSame() throws {
        var c = try parse(["--from": "best-of:3", "--scorer": "length", "--target-length": "12", "--lora-rank": "2", "--precision": "bf16"])
        c.policyModel = 7
        let json = try JSONEncoder().encode(c)
        XCTAssertEqual(try JSONDecoder().decode(SFTConfig.self, from: json), c)
        let text = String(decoding: json, as: UTF8.self)
        XCTAssertTrue(text.contains("\"from\":\"best-of:3\""), text)
        XCTAssertThrowsError(
            try JSONDecoder().decode(SFTConfig.self, from: Data(text.replacingOccurrences(of: "best-of:3", with: "best-of:x").utf8)))
    }
}
