import Foundation
import XCTest

/// Drives the built `rlhf` binary.
final class CLITests: XCTestCase {
    func run(_ args: [String], env: [String: String] = [:]) throws -> CLIResult { try runCLI(args, env: env) }

    func testHelpListsCommands() throws {
        let r = try run(["--help"])
        XCTAssertEqual(r.status, 0)
        XCTAssertTrue(r.stdout.contains("bench"))
        let b = try run(["bench", "--help"])
        XCTAssertEqual(b.status, 0)
        XCTAssertTrue(b.stdout.contains("--only"))
        XCTAssertTrue(b.stdout.contains("8×768×50257"))
    }

    func testUsageErrorsExitWithStatus2OnOneLine() throws {
        let unknown = try run(["frobnicate"])
        XCTAssertEqual(unknown.status, 2)
        XCTAssertTrue(unknown.stderr.contains("unknown command 'frobnicate'"))
        let badOption = try run(["bench", "--confg", "S"])
        XCTAssertEqual(badOption.status, 2)
        XCTAssertTrue(badOption.stderr.contains("unknown option '--confg'"))
        XCTAssertEqual(badOption.stderr.split(separator: "\n").count, 1)
        let badConfig = try run(["bench", "--config", "XL"])
        XCTAssertEqual(badConfig.status, 2)
        let badValue = try run(["bench", "--repeat", "many"])
        XCTAssertEqual(badValue.status, 2)
        XCTAssertTrue(badValue.stderr.contains("--repeat expects an integer"))
        // TRL's timing only stands beside the grpo rows, fully fine-tuned.
        for args in [["bench", "--trl"], ["bench", "--only", "grpo", "--trl", "--lora-rank", "4"]] {
            let trl = try run(args)
            XCTAssertEqual(trl.status, 2, args.joined(separator: " "))
            XCTAssertTrue(trl.stderr.contains("--only grpo"), trl.stderr)
        }
    }

    func testBenchGRPORowsCarryTheIterationAndTheDecodeShareOfPeak() throws {
        let r = try run(["bench", "--json", "--only", "grpo", "--config", "S"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let rows = r.stdout.split(separator: "\n").compactMap { line in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]).flatMap { $0["what"] as? String == "grpo" ? $0 : nil }
        }
        XCTAssertEqual(rows.map { $0["phase"] as? String }, ["generation", "scoring", "reference", "update", "total"])
        let seconds = rows.map { $0["seconds"] as? Double ?? -1 }
        XCTAssertEqual(seconds[4], rows[4]["iteration_s"] as? Double)
        XCTAssertEqual(seconds[0..<4].reduce(0, +), seconds[4], accuracy: 0.01 + 0.05 * seconds[4])
        // 16 prompts × 4 × at most 48 tokens; the share is of a measured peak, so below 1.
        let tokens = rows[0]["generated_tokens"] as? Int ?? 0, share = rows[0]["peak_share"] as? Double ?? -1
        XCTAssertTrue((64...64 * 48).contains(tokens), "\(tokens)")
        XCTAssertTrue(share > 0 && share < 1, "\(share)")
        XCTAssertNil(rows[1]["gflops"])
        // The generation's time split into the prefill and the decode steps (47 steps × 64 rows
        // at most: the first token comes from the prefill).
        let prefill = rows[0]["prefill_s"] as? Double ?? -1, decode = rows[0]["decode_s"] as? Double ?? -1
        XCTAssertTrue(prefill > 0 && decode > 0, "\(prefill) \(decode)")
        XCTAssertEqual(prefill + decode, seconds[0], accuracy: 0.01 + 0.05 * seconds[0])
        let decoded = rows[0]["decoded_rows"] as? Int ?? -1
        XCTAssertTrue((1...64 * 47).contains(decoded), "\(decoded)")
        let decodeShare = rows[0]["decode_peak_share"] as? Double ?? -1
        XCTAssertTrue(decodeShare > 0 && decodeShare < 1, "\(decodeShare)")
    }

    func testBenchJSONLines() throws {
        let r = try run(["bench", "--json", "--only", "train,generate", "--config", "S", "--repeat", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let objects = r.stdout.split(separator: "\n").map { line -> [String: Any] in
            (try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]) ?? [:]
        }
        XCTAssertEqual(objects.map { $0["what"] as? String }, ["train", "generate", "memory"])
        XCTAssertEqual(objects[0]["config"] as? String, "S")
        XCTAssertEqual(objects[0]["B"] as? Int, 16)
        XCTAssertEqual(objects[0]["T"] as? Int, 128)
        XCTAssertGreaterThan(objects[0]["tokens_per_s"] as? Double ?? 0, 0)
        // random tokens over a 512-word vocabulary: the loss starts near ln 512
        XCTAssertEqual(objects[0]["loss"] as? Double ?? 0, log(512.0), accuracy: 0.3)
        XCTAssertEqual(objects[1]["new"] as? Int, 64)
        XCTAssertGreaterThan(objects[1]["tokens_per_s"] as? Double ?? 0, 0)
        XCTAssertGreaterThan(objects[2]["peak_rss_mb"] as? Double ?? 0, 1)

        // With LoRA adapters beside full fine-tuning: fresh adapters (B = 0) start from the base,
        // so the loss stays near ln 512 too.
        let l = try run(["bench", "--json", "--only", "train", "--config", "S", "--repeat", "1", "--lora-rank", "4"])
        XCTAssertEqual(l.status, 0, l.stderr)
        let rows = l.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        XCTAssertEqual(rows.map { $0["lora_rank"] as? Int }, [nil, 4, nil])
        XCTAssertGreaterThan(rows[1]["tokens_per_s"] as? Double ?? 0, 0)
        XCTAssertEqual(rows[1]["loss"] as? Double ?? 0, log(512.0), accuracy: 0.3)
        XCTAssertEqual(try run(["bench", "--lora-rank", "0"]).status, 2)
    }
}

extension CLITests {
    func testBenchPPOProfileAndTokenizer() throws {
        let r = try run(["bench", "--json", "--only", "ppo,tokenize", "--repeat", "1"])
        XCTAssertEqual(r.status, 0, r.stderr)
        let objects = r.stdout.split(separator: "\n").compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
        let phases = objects.filter { $0["what"] as? String == "ppo" }.compactMap { $0["phase"] as? String }
        XCTAssertEqual(
            phases,
            [
                "generate", "reference", "reward", "value", "policy logprobs", "update forward", "update backward",
                "update optimizer", "update other", "total",
            ])
        let seconds = objects.filter { $0["what"] as? String == "ppo" }.map { $0["seconds"] as? Double ?? -1 }
        XCTAssertTrue(seconds.allSatisfy { $0 >= 0 })
        XCTAssertEqual(seconds.dropLast().reduce(0, +), seconds.last!, accuracy: 0.05 * seconds.last! + 0.01, "the phases add up to the total")
        let tok = try XCTUnwrap(objects.first { $0["what"] as? String == "tokenize" })
        XCTAssertGreaterThan(tok["mb_per_s"] as? Double ?? 0, 0)
    }
}
