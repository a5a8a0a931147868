import Foundation
import XCTest

@testable import RunStore

/// `rlhf sft` through the binary: demonstrations made from rankings, a run killed with SIGKILL and
/// resumed to the same weights and metrics as an uninterrupted one, the SFT policy as the
/// reference of the stages after it (and --keep-reference), what status shows, and the errors.
final class SFTCommandTests: ScratchFolderTestCase {
    func path(_ run: String) -> String { dir.appendingPathComponent(run).path }

    func store(_ run: String) throws -> RunStore { try RunStore(folder: URL(fileURLWithPath: path(run))) }

    /// A run with a random S base and 24 imported comparisons, over 24 prompts.
    func prepare(_ run: String) throws {
        try rlhf(["init", "--run", path(run), "--base", "random:S"])
        let pairs = (0..<24).map { "{\"prompt\":\"question \($0)\",\"chosen\":\"thanks, glad to help \($0)\",\"rejected\":\"ugh whatever\"}" }
        let file = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", path(run)])
    }

    func metrics(_ run: String) throws -> [String: Double] {
        let s = try store(run)
        var out: [String: Double] = [:]
        for m in try s.metrics(stageRunId: try s.stageRuns(stage: "sft").first!.id) { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    func testFromRankingsKilledAndResumedMatchesAnUninterruptedRun() throws {
        try prepare("a")
        try FileManager.default.copyItem(atPath: path("a"), toPath: path("b"))
        let args = ["--from", "rankings", "--epochs", "2", "--batch", "4", "--micro-batch", "3", "--lr", "1e-3", "--save-every", "2", "--seed", "3"]
        let (whole, resumed) = try wholeAndResumed("sft", args, a: path("a"), b: path("b"), metric: "loss", step: 5, label: "SFT")
        XCTAssertTrue(whole.stdout.contains("rankings: 24 demonstrations stored"), whole.stdout)
        XCTAssertTrue(whole.stdout.contains("SFT finished: 12 steps"), whole.stdout)
        XCTAssertTrue(resumed.stdout.contains("SFT finished: 12 steps"), resumed.stdout)
        let ma = try metrics("a"), mb = try metrics("b")
        XCTAssertEqual(Set(ma.keys), Set(mb.keys))
        for (k, v) in ma { XCTAssertEqual(mb[k] ?? .nan, v, accuracy: 1e-12, k) }
        for name in ["loss", "mean_token_accuracy", "entropy", "num_tokens", "grad_norm", "learning_rate", "eval_loss", "eval_mean_token_accuracy"] {
            XCTAssertNotNil(ma["\(name)@12"], name)
        }
        let sa = try store("a"), sb = try store("b")
        XCTAssertEqual(try sa.latestModel(role: .policy)?.sha256, try sb.latestModel(role: .policy)?.sha256, "the same weights")
        XCTAssertEqual(try sb.stageRuns(stage: "sft").count, 1)
        XCTAssertEqual(try sb.demonstrations().count, 24, "the killed run's demonstrations are not made twice")
        XCTAssertTrue(try sb.demonstrations().allSatisfy { $0.demonstration.source == "rankings" && $0.demonstration.text.hasPrefix("thanks") })

        // The SFT policy is the reference now: status says so, and DPO starts from it and uses it.
        let sft = try XCTUnwrap(sb.latestModel(role: .policy))
        let ref = try XCTUnwrap(sb.latestModel(role: .reference))
        XCTAssertEqual(ref.sha256, sft.sha256)
        let status = try rlhf(["status", "--run", path("b")]).stdout
        XCTAssertTrue(status.contains("  policy       #\(sft.id) \(sft.path) (step 12) — from sft run #"), status)
        XCTAssertTrue(status.contains("  reference    #\(ref.id) \(sft.path) (step 12) — from sft run #"), status)
        let st = try JSONSerialization.jsonObject(with: Data(try rlhf(["status", "--run", path("b"), "--json"]).stdout.utf8)) as! [String: Any]
        XCTAssertEqual((st["reference"] as? [String: Any])?["id"] as? Int, Int(ref.id))
        try rlhf(["dpo", "--run", path("b"), "--epochs", "1", "--batch", "8"])
        let dpo = try JSONSerialization.jsonObject(with: Data(sb.stageRuns(stage: "dpo")[0].config.utf8)) as! [String: Any]
        XCTAssertEqual(dpo["policyModelId"] as? Int, Int(sft.id), "DPO starts from the SFT policy")
        XCTAssertEqual(dpo["referenceModelId"] as? Int, Int(ref.id), "and measures against it")
        // --keep-reference leaves the base as the reference.
        let base = try XCTUnwrap(sa.models().first { $0.role == .reference })
        try rlhf(["sft", "--run", path("c"), "--epochs", "1"], expect: 1)
        try FileManager.default.removeItem(atPath: path("a"))
        try prepare("a")
        try rlhf(["sft", "--run", path("a"), "--from", "rankings", "--epochs", "1", "--keep-reference"])
        XCTAssertEqual(try store("a").latestModel(role: .reference)?.sha256, base.sha256)
        XCTAssertNotEqual(try store("a").latestModel(role: .policy)?.sha256, base.sha256)
    }

    /// LoRA SFT, then LoRA GRPO with a KL term: GRPO's adapters go over the SFT policy (adapters
    /// over the base), and its reference is the SFT policy, shared rather than loaded twice.
    func testLoRASFTThenLoRAGRPO() throws {
        try prepare("a")
        let r = try rlhf(["sft", "--run", path("a"), "--from", "rankings", "--epochs", "1", "--lora-rank", "2", "--frozen-dtype", "bf16", "--json"])
        let out = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        let s = try store("a")
        let sft = try XCTUnwrap(s.latestModel(role: .policy)), ref = try XCTUnwrap(s.latestModel(role: .reference))
        XCTAssertEqual(out["policy"] as? Int, Int(sft.id))
        XCTAssertEqual(out["reference"] as? Int, Int(ref.id))
        XCTAssertNotNil(sft.baseId, "LoRA SFT checkpoints are adapters")
        XCTAssertEqual(ref.baseId, sft.baseId)
        try rlhf([
            "grpo", "--run", path("a"), "--reward", "length", "--iterations", "2", "--batch", "2", "--group", "2", "--response-length", "8",
            "--beta", "0.04", "--lora-rank", "2",
        ])
        let g = try JSONSerialization.jsonObject(with: Data(s.stageRuns(stage: "grpo")[0].config.utf8)) as! [String: Any]
        XCTAssertEqual(g["policyModelId"] as? Int, Int(sft.id), "GRPO starts from the SFT policy")
        XCTAssertEqual(g["referenceModelId"] as? Int, Int(ref.id), "and its KL is to the SFT policy")
        XCTAssertEqual(try s.latestModel(role: .policy)?.baseId, sft.id, "GRPO's adapters are over the SFT policy")
        try rlhf(["generate", "--run", path("a"), "--limit", "2", "--per-prompt", "1"])
        XCTAssertTrue(try rlhf(["status", "--run", path("a"), "--check"]).stdout.contains("check ok"))
    }

    func testBestOfAndErrors() throws {
        try prepare("a")
        try rlhf(["sft", "--run", path("a"), "--from", "rankings", "--epochs", "1"])
        // Best of 2 under the length labeler (a random model's samples rarely stop, so this
        // checks the plumbing: it samples every train prompt, stores what it made before
        // training, says so, and trains on every demonstration).
        let r = try rlhf(["sft", "--run", path("a"), "--from", "best-of", "2", "--scorer", "length", "--response-length", "4", "--epochs", "1"])
        let made = try store("a").demonstrations().filter { $0.demonstration.source == "best-of:2" }.count
        XCTAssertTrue(r.stdout.contains("best-of:2: \(made) demonstrations stored"), r.stdout)
        XCTAssertTrue(r.stdout.contains("SFT run #"), r.stdout)
        // Errors: usage errors exit 2, a run that cannot train exits 1, each with one line.
        for (args, status, message) in [
            (["--from", "best-of", "1"], Int32(2), "--from best-of must be in 2...1024"),
            (["--scorer", "lexicon"], 2, "--scorer applies to --from best-of N only"),
            (["--lr", "-1"], 2, "--lr must be positive"),
            (["--frozen-dtype", "bf16"], 2, "needs --lora-rank"),
            (["--resume"], 1, "finished; start a new one with 'rlhf sft'"),
        ] {
            let e = try rlhf(["sft", "--run", path("a")] + args, expect: status)
            XCTAssertTrue(e.stderr.contains(message), "\(args): \(e.stderr)")
            XCTAssertEqual(e.stderr.split(separator: "\n").count, 1, e.stderr)
        }
        try rlhf(["init", "--run", path("empty"), "--base", "random:S"])
        let e = try rlhf(["sft", "--run", path("empty")], expect: 1)
        XCTAssertTrue(e.stderr.contains("no demonstrations"), e.stderr)
        XCTAssertTrue(try rlhf(["sft", "--help"]).stdout.contains("--keep-reference"))
    }
}
