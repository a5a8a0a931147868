import Foundation
import RunStore
import TransformerCore
import XCTest

/// `--precision` as a user meets it: on every command that runs models, stored with a stage's
/// settings, refused with the values allowed, and in `rlhf bench` (the peak rows, rows repeated
/// per precision, the precision comparison).
final class PrecisionCommandTests: ScratchFolderTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    /// The JSON lines of a bench run.
    func jsonLines(_ r: CLIResult) -> [[String: Any]] {
        r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }

    func testEveryCommandOffersIt() throws {
        for command in ["pretrain", "train-reward", "ppo", "dpo", "generate", "compare", "demo", "bench"] {
            let help = try rlhf([command, "--help"]).stdout
            XCTAssertTrue(help.contains("--precision"), "\(command) --help: \(help)")
        }
    }

    func testABadValueIsAUsageErrorNamingTheValues() throws {
        for args in [
            ["ppo", "--precision", "fp16"], ["dpo", "--precision", "fp16"], ["train-reward", "--precision", "fp16"],
            ["generate", "--precision", "fp16"], ["compare", "--a", "1", "--b", "2", "--precision", "fp16"],
            ["pretrain", "--corpus", "c.txt", "-o", "out", "--precision", "fp16"], ["demo", "--precision", "fp16"],
            ["bench", "--only", "matmul", "--precision", "f32,fp16"],
        ] {
            let r = try rlhf(args, expect: 2)
            XCTAssertTrue(r.stderr.contains("--precision must be f32 or bf16, got 'fp16'"), "\(args): \(r.stderr)")
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        let memory = try rlhf(["bench", "--only", "ppo-memory", "--config", "S", "--precision", "f32,bf16"], expect: 2)
        XCTAssertTrue(memory.stderr.contains("one --precision per run"), memory.stderr)
    }

    /// `rlhf generate --precision bf16` stores it with the stage run; `--resume` with another
    /// value says that the run keeps its own settings.
    func testStoredWithTheStageRun() throws {
        try "hello there\nhow are you\n".write(to: dir.appendingPathComponent("p.txt"), atomically: true, encoding: .utf8)
        try rlhf(["init", "--run", "r", "--base", "random:S"])
        try rlhf(["prompts", "add", "p.txt", "--run", "r"])
        try rlhf(["generate", "--run", "r", "--precision", "bf16", "--limit", "1", "--per-prompt", "1", "--max-new-tokens", "4"])
        try rlhf(["generate", "--run", "r", "--limit", "1", "--per-prompt", "1", "--max-new-tokens", "4", "--again"])
        let store = try RunStore(folder: dir.appendingPathComponent("runs/r"))
        let configs = try store.stageRuns(stage: "generate").map(\.config)
        XCTAssertEqual(configs.count, 2)
        XCTAssertTrue(configs[1].contains("\"precision\":\"bf16\""), configs[1])
        XCTAssertTrue(configs[0].contains("\"precision\":\"f32\""), configs[0])
        let note = try rlhf(["dpo", "--run", "r", "--resume", "--precision", "bf16"], expect: 1)
        XCTAssertTrue(note.stderr.contains("--resume continues with the settings the run was started with"), note.stderr)
    }

    func testBenchPeak() throws {
        let r = try rlhf(["bench", "--only", "peak", "--json"])
        let rows = jsonLines(r)
        XCTAssertEqual(rows.count, r.stdout.split(separator: "\n").count, "every line is JSON: \(r.stdout)")
        let peaks = rows.filter { $0["what"] as? String == "peak" }
        XCTAssertEqual(peaks.map { $0["precision"] as? String }, Kernels.hasAVX512BF16 ? ["f32", "bf16"] : ["f32"], r.stdout)
        for row in peaks {
            XCTAssertGreaterThan(row["gflops"] as? Double ?? 0, 0, "\(row)")
            XCTAssertEqual(row["isa"] as? String, Kernels.activePath.rawValue, "\(row)")
            XCTAssertGreaterThanOrEqual(row["threads"] as? Int ?? 0, 1, "\(row)")
        }
        XCTAssertEqual(peaks.first?["width"] as? Int, PeakLoops.fp32Width(Kernels.activePath))
        for row in rows {
            XCTAssertNotNil(row["precision"] as? String, "\(row)")
            XCTAssertNotNil(row["isa"] as? String, "\(row)")
        }
        let text = try rlhf(["bench", "--only", "peak", "--threads", "1"]).stdout
        XCTAssertTrue(text.contains("peak    f32  \(PeakLoops.fp32Width(Kernels.activePath))-wide FMA"), text)
        XCTAssertTrue(text.contains("GFLOPS (1 thread)"), text)
    }

    func testBenchRowsRepeatedPerPrecision() throws {
        let r = try rlhf(["bench", "--only", "matmul", "--shapes", "64x64x64", "--precision", "f32,bf16", "--json"])
        let rows = jsonLines(r)
        let matmul = rows.filter { $0["what"] as? String == "matmul" }
        XCTAssertEqual(matmul.map { $0["precision"] as? String }, ["f32", "bf16"], r.stdout)
        for row in matmul {
            XCTAssertEqual(row["m"] as? Int, 64)
            XCTAssertGreaterThan(row["gflops"] as? Double ?? 0, 0, "\(row)")
            XCTAssertGreaterThan(row["peak_gflops"] as? Double ?? 0, 0, "\(row)")
            XCTAssertGreaterThan(row["peak_share"] as? Double ?? 0, 0, "\(row)")
            XCTAssertNotNil(row["isa"] as? String)
        }
        // Rows measured in bf16 products are tagged in the text; the f32 rows are as before.
        let text = try rlhf(["bench", "--only", "matmul", "--shapes", "16x16x16", "--precision", "bf16,f32"]).stdout
        XCTAssertTrue(text.hasPrefix("rlhf bench (kernels \(Kernels.activePath.rawValue), threads "), text)
        XCTAssertTrue(text.split(separator: "\n")[0].hasSuffix(", precision bf16,f32)"), text)
        let lines = text.split(separator: "\n").filter { $0.hasPrefix("matmul") }
        XCTAssertEqual(lines.count, 2, text)
        XCTAssertTrue(lines[0].hasPrefix("matmul  16×16×16 [bf16]") && lines[0].contains("% of peak"), text)
        XCTAssertTrue(lines[1].hasPrefix("matmul  16×16×16 ") && !lines[1].contains("[bf16]"), text)
        // The train rows carry their GFLOPS and share of the peak.
        let train = jsonLines(try rlhf(["bench", "--only", "train", "--config", "S", "--repeat", "1", "--json"]))
            .first { $0["what"] as? String == "train" }
        XCTAssertGreaterThan(train?["gflops"] as? Double ?? 0, 0, "\(train ?? [:])")
        XCTAssertGreaterThan(train?["peak_share"] as? Double ?? 0, 0, "\(train ?? [:])")
        XCTAssertEqual(train?["precision"] as? String, "f32")
    }

    /// The same model trained from the same seed in f32 and in bf16 ends at nearly the same loss.
    func testBenchPrecisionComparesTheTwoTrainings() throws {
        // On one thread, which a busy machine slows least.
        let r = try runCLI(["bench", "--only", "precision", "--json", "--threads", "1"], cwd: Self.repo)
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = jsonLines(r).filter { $0["what"] as? String == "precision" }
        XCTAssertEqual(rows.map { $0["precision"] as? String }, ["f32", "bf16"], r.stdout)
        let f32 = rows[0], bf16 = rows[1]
        for row in rows {
            XCTAssertEqual(row["steps"] as? Int, 60)
            let loss = row["loss"] as? Double ?? .nan
            XCTAssertTrue(loss > 0 && loss < log(1024.0), "trained below the uniform loss: \(row)")
            XCTAssertGreaterThan(row["val_loss"] as? Double ?? 0, 0, "\(row)")
        }
        let diff = bf16["loss_diff"] as? Double ?? .nan
        XCTAssertEqual(diff, (bf16["loss"] as? Double ?? .nan) - (f32["loss"] as? Double ?? .nan), accuracy: 2e-5)
        XCTAssertLessThan(abs(diff), 0.1, "bf16 products train like f32 ones")
        XCTAssertNotNil(bf16["val_loss_diff"] as? Double)
    }
}
