import Foundation
import XCTest

/// `rlhf demo --quick --dpo --grpo` from the project's folder, with thresholds suited to the short
/// version (the full demo's figures are in the README), and `rlhf export` of the aligned policy.
final class DemoCommandTests: XCTestCase {
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func testQuickDemoShowsAlignment() throws {
        let run = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-e2e-demo-\(getpid())")
        defer { try? FileManager.default.removeItem(at: run) }
        let r = try runCLI(["demo", "--quick", "--dpo", "--grpo", "--json", "--run", run.path], cwd: Self.repo)
        XCTAssertEqual(r.status, 0, r.stderr)
        for stage in [
            "1. Base model", "2. Init", "3. Bundled prompts", "4. Generate", "5. Simulated labeling", "6. Train the reward model", "7. PPO", "8. DPO",
            "9. GRPO", "10. Curves", "11. Report",
        ] {
            XCTAssertTrue(r.stderr.contains("== \(stage)"), stage)
        }
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any], r.stdout)
        func d(_ k: String) -> Double { j[k] as? Double ?? .nan }
        print("quick demo:", r.stdout)
        XCTAssertGreaterThan(d("lexicon_final") - d("lexicon_base"), 1.5, "the mean lexicon score rises clearly")
        XCTAssertGreaterThanOrEqual(d("preferred_final"), 0.8, "the labeler prefers the final policy")
        XCTAssertLessThan(d("kl"), 2 * d("target_kl"), "the KL stays below twice the target")
        XCTAssertGreaterThanOrEqual(d("reward_val_accuracy"), 0.8, "the quick reward model (smaller base) learns the preference")
        XCTAssertTrue(FileManager.default.fileExists(atPath: run.appendingPathComponent("report.html").path))
        // DPO on the same simulated lexicon labels raises the lexicon score of eval completions,
        // and its implicit reward ranks the held-out pairs.
        XCTAssertGreaterThan(d("dpo_lexicon_final"), d("lexicon_base"), "DPO raises the mean lexicon score")
        XCTAssertGreaterThanOrEqual(d("dpo_val_accuracy"), 0.8, "rewards/accuracies on the validation prompts")
        XCTAssertEqual((j["dpo_vs_ppo_wins"] as? Int ?? 0) + (j["dpo_vs_ppo_losses"] as? Int ?? 0) + (j["dpo_vs_ppo_ties"] as? Int ?? 0), 480)
        // GRPO against the same reward model, set up as PPO is: better than the base, no further
        // from the reference than PPO's target allows, and head to head with PPO and DPO.
        XCTAssertGreaterThan(d("grpo_lexicon_final"), d("lexicon_base") + 1, "GRPO raises the mean lexicon score")
        XCTAssertGreaterThanOrEqual(d("grpo_preferred_final"), 0.7, "the labeler prefers the GRPO policy to the base")
        XCTAssertLessThan(d("grpo_kl"), d("target_kl"), "GRPO stays near the reference")
        for other in ["ppo", "dpo"] {
            let n = ["wins", "losses", "ties"].reduce(0) { $0 + (j["grpo_vs_\(other)_\($1)"] as? Int ?? 0) }
            XCTAssertEqual(n, 480, other)
        }
        let report = try String(contentsOf: run.appendingPathComponent("report.html"), encoding: .utf8)
        XCTAssertTrue(report.contains("<section id=\"dpo\">") && report.contains("<section id=\"grpo\">"))

        let out = run.appendingPathComponent("exported")
        let e = try runCLI(["export", "--run", run.path, "-o", out.path], cwd: Self.repo)
        XCTAssertEqual(e.status, 0, e.stderr)
        for f in ["config.json", "model.safetensors", "tokenizer.json", "vocab.json", "merges.txt", "tokenizer_config.json"] {
            XCTAssertTrue(FileManager.default.fileExists(atPath: out.appendingPathComponent(f).path), f)
        }
        let s = try runCLI(["sample", "--model", out.path, "--prompt", "How do I brew green tea?", "--greedy"], cwd: Self.repo)
        XCTAssertEqual(s.status, 0, s.stderr)
        XCTAssertFalse(s.stdout.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty)
        let rm = try runCLI(["export", "--run", run.path, "--model", "reward", "-o", run.appendingPathComponent("rm").path], cwd: Self.repo)
        XCTAssertEqual(rm.status, 0, rm.stderr)
        let config = try String(contentsOf: run.appendingPathComponent("rm/config.json"), encoding: .utf8)
        XCTAssertTrue(config.contains("GPT2ForSequenceClassification") && config.contains("rlhf_reward_gain"))
        XCTAssertEqual(try runCLI(["export", "--run", run.path, "--model", "critic", "-o", "/tmp/x"], cwd: Self.repo).status, 2)
    }
}
