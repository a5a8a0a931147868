import Foundation
import StageKit
import TransformerCore
import XCTest

/// A config of the shape the stages use, to test the option table without a stage.
struct ToyConfig: StageConfig, Equatable {
    var steps = 3
    var rate: Float = 2e-5
    var share = 0.25
    var name: String? = nil
    var seed: UInt64 = 7
    var verbose = false
    var lora: LoRAConfig?
    var frozen = FrozenDType.f32
    var sampling = SamplingSettings(temperature: 0.7)

    static let options: [ConfigOption<ToyConfig>] = [
        .int("--steps", \.steps, range: 1...10, "steps to take"),
        .number("--rate", \.rate, "learning rate", valid: { $0 > 0 }),
        .number("--share", \.share, "a share", placeholder: "F"),
        .value("--name", "NAME", \.name, "a name", shown: { _ in nil }) { $0 },
        .seed(\.seed, "the seed"),
        .flag("--verbose", \.verbose, "say more", "on two lines"),
        LoRAOptions.group(\.lora) { c, t in c.frozen = t },
        SamplingOptions.group(\.sampling),
    ]

    mutating func finish(given: GivenOptions) throws {
        if lora != nil && !given.has("--rate") { rate *= LoRAOptions.learningRateFactor }
    }

    var validationError: String? { share < 1 ? nil : "--share must be below 1" }
}

final class ConfigOptionTests: XCTestCase {
    func parse(_ values: [String: String], _ flags: Set<String> = []) throws -> ToyConfig {
        try ToyConfig.parse(GivenOptions(values: values, flags: flags))
    }

    func message(_ values: [String: String]) -> String {
        do { _ = try parse(values); return "no error" } catch { return "\(error)" }
    }

    func testNothingGivenIsTheDefaults() throws {
        XCTAssertEqual(try parse([:]), ToyConfig())
    }

    func testEachOptionSetsItsSetting() throws {
        let c = try parse(
            ["--steps": "4", "--rate": "0.5", "--share": "0.5", "--name": "x", "--seed": "9", "--top-k": "3", "--temperature": "1.5"],
            ["--verbose"])
        XCTAssertEqual([c.steps, Int(c.seed)], [4, 9])
        XCTAssertEqual(c.rate, 0.5)
        XCTAssertEqual(c.share, 0.5)
        XCTAssertEqual(c.name, "x")
        XCTAssertTrue(c.verbose)
        XCTAssertEqual(c.sampling, SamplingSettings(temperature: 1.5, topK: 3))
    }

    func testBadValuesAreRefusedWithTheCommandLinesMessages() {
        XCTAssertEqual(message(["--steps": "x"]), "--steps expects an integer, got 'x'")
        XCTAssertEqual(message(["--steps": "11"]), "--steps must be in 1...10, got 11")
        XCTAssertEqual(message(["--rate": "-1"]), "--rate expects a number, got '-1'")
        XCTAssertEqual(message(["--rate": "inf"]), "--rate expects a number, got 'inf'")
        XCTAssertEqual(message(["--seed": "-1"]), "--seed must be in 0...\(Int.max), got -1")
        XCTAssertEqual(message(["--share": "2"]), "--share must be below 1")
        XCTAssertEqual(message(["--top-p": "0"]), "--top-p expects a number in (0, 1], got '0'")
        XCTAssertEqual(message(["--lora-alpha": "4"]), "--lora-alpha needs --lora-rank")
        XCTAssertEqual(
            message(["--frozen-dtype": "bf16"]),
            "--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16")
        XCTAssertEqual(message(["--lora-rank": "2", "--lora-targets": ","]), "--lora-targets needs at least one projection name")
    }

    func testLoRAGroupAndTheLearningRateRule() throws {
        let c = try parse(["--lora-rank": "8", "--lora-targets": "q_proj, v_proj", "--frozen-dtype": "bf16"])
        XCTAssertEqual(c.lora, LoRAConfig(rank: 8, alpha: 16, targets: ["q_proj", "v_proj"]))
        XCTAssertEqual(c.frozen, .bf16)
        XCTAssertEqual(c.rate, ToyConfig().rate * 10, "LoRA without --rate trains at ten times the rate")
        XCTAssertEqual(try parse(["--lora-rank": "8", "--rate": "0.5"]).rate, 0.5, "--rate wins over the LoRA rule")
        XCTAssertEqual(
            try parse(["--lora-rank": "2", "--lora-alpha": "5", "--lora-dropout": "0.1"]).lora,
            LoRAConfig(rank: 2, alpha: 5, targets: [], dropout: 0.1))
    }

    func testEveryNameIsAccepted() {
        XCTAssertEqual(
            Set(ToyConfig.valuedOptions),
            [
                "--steps", "--rate", "--share", "--name", "--seed", "--lora-rank", "--lora-alpha",
                "--lora-targets", "--lora-dropout", "--frozen-dtype", "--temperature", "--top-k", "--top-p",
            ])
        XCTAssertEqual(ToyConfig.switchOptions, ["--verbose"])
    }

    /// The help is read from the table, with each default read from the type's own value.
    func testHelpShowsTheDefaultsOfTheType() {
        let help = ToyConfig.help(column: 20).split(separator: "\n").map(String.init)
        XCTAssertEqual(help[0], "  --steps N         steps to take [3]")
        XCTAssertEqual(help[1], "  --rate X          learning rate [2e-5]")
        XCTAssertEqual(help[2], "  --share F         a share [0.25]")
        XCTAssertEqual(help[3], "  --name NAME       a name")
        XCTAssertEqual(help[4], "  --seed S          the seed [7]")
        XCTAssertEqual(help[5...6], ["  --verbose         say more", "                    on two lines"])
        XCTAssertTrue(help.contains("  --temperature X   sampling temperature [0.7]"), help.joined(separator: "\n"))
        XCTAssertTrue(help.contains { $0.hasPrefix("  --lora-dropout P") })
        let long = HelpRows.render([("--a-very-long-option VALUE", ["its help"])], column: 10)
        XCTAssertEqual(long, "  --a-very-long-option VALUE\n          its help", "a label wider than the column gets a line of its own")
    }

    func testDefaultsAsTheHelpShowsThem() {
        XCTAssertEqual(formatDefault(Float(1e-5)), "1e-5")
        XCTAssertEqual(formatDefault(Float(1)), "1")
        XCTAssertEqual(formatDefault(0.95), "0.95")
        XCTAssertEqual(formatDefault(Float(-1)), "-1")
    }
}
