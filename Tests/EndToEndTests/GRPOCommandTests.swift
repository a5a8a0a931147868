import Foundation
import XCTest

@testable import RunStore

/// `rlhf grpo` through the binary: runs killed with SIGKILL and resumed whose metrics and
/// weights equal the uninterrupted runs' (full fine-tuning with the KL penalty and μ = 2, and
/// LoRA over bf16 frozen weights), a reward program that fails mid-run, and the errors.
final class GRPOCommandTests: ScratchFolderTestCase {
    func path(_ run: String) -> String { dir.appendingPathComponent(run).path }

    func store(_ run: String) throws -> RunStore { try RunStore(folder: URL(fileURLWithPath: path(run))) }

    /// A run with a random S base, 60 imported comparisons and (unless `reward` is false) a
    /// reward model trained on them.
    func prepare(_ run: String, reward: Bool = true) throws {
        try rlhf(["init", "--run", path(run), "--base", "random:S"])
        let pairs = (0..<60).map { "{\"prompt\":\"question \($0)\",\"chosen\":\"thanks, glad to help\",\"rejected\":\"ugh whatever\"}" }
        let file = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", path(run)])
        if reward { try rlhf(["train-reward", "--run", path(run), "--epochs", "1", "--lr", "1e-3"]) }
    }

    /// Every metric of the latest GRPO stage run but the timings, as "name@step".
    func metrics(_ run: String) throws -> [String: Double] {
        let s = try store(run)
        let id = try s.stageRuns(stage: "grpo").first!.id
        var out: [String: Double] = [:]
        for m in try s.metrics(stageRunId: id) where !m.name.hasPrefix("time/") { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    func assertSameRuns(_ a: String, _ b: String, iterations: Int, file: StaticString = #filePath, line: UInt = #line) throws {
        let ma = try metrics(a), mb = try metrics(b)
        XCTAssertEqual(Set(ma.keys), Set(mb.keys), file: file, line: line)
        XCTAssertEqual(ma.count, iterations * ma.keys.filter { $0.hasSuffix("@1") }.count, file: file, line: line)
        for (k, v) in ma where v.isFinite { XCTAssertEqual(mb[k] ?? .nan, v, accuracy: 1e-9 + 1e-6 * abs(v), k, file: file, line: line) }
        let sa = try store(a), sb = try store(b)
        XCTAssertEqual(try sa.latestModel(role: .policy)?.sha256, try sb.latestModel(role: .policy)?.sha256, file: file, line: line)
        XCTAssertEqual(try sb.latestModel(role: .policy)?.step, iterations, file: file, line: line)
        XCTAssertEqual(try sb.stageRuns(stage: "grpo").count, 1, "the resume continued the same stage run", file: file, line: line)
    }

    func testKilledAndResumedRunMatchesAnUninterruptedOne() throws {
        try prepare("a")
        try FileManager.default.copyItem(atPath: path("a"), toPath: path("b"))
        let args = [
            "--iterations", "8", "--batch", "4", "--group", "4", "--response-length", "16", "--save-every", "2", "--lr", "1e-4",
            "--seed", "3", "--beta", "0.04", "--num-iterations", "2", "--epsilon-high", "0.28", "--loss", "bnpo", "--micro-batch", "8",
        ]
        let (whole, resumed) = try wholeAndResumed("grpo", args, a: path("a"), b: path("b"), metric: "reward", step: 5, label: "GRPO")
        XCTAssertTrue(whole.stdout.contains("GRPO finished: 8 iterations"), whole.stdout)
        XCTAssertTrue(resumed.stdout.contains("GRPO finished"), resumed.stdout)
        try assertSameRuns("a", "b", iterations: 8)
        let m = try metrics("a")
        for name in [
            "reward", "reward_std", "frac_reward_zero_std", "rewards/rm/mean", "completions/mean_length", "completions/clipped_ratio", "kl",
            "entropy", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "policy_loss", "grad_norm",
        ] {
            XCTAssertNotNil(m["\(name)@8"], name)
        }
        let sb = try store("b")
        XCTAssertEqual(try sb.samples(stageRunId: sb.stageRuns(stage: "grpo")[0].id).count, 32, "4 samples per iteration, none duplicated")
        let policy = try sb.latestModel(role: .policy)!
        XCTAssertTrue(policy.note?.contains("GRPO (bnpo) iteration 8") ?? false, policy.note ?? "")
        // status, curves and the report show the run.
        let st = try JSONSerialization.jsonObject(with: Data(try rlhf(["status", "--run", path("b"), "--json"]).stdout.utf8)) as! [String: Any]
        let g = try XCTUnwrap(st["grpo"] as? [String: Any])
        XCTAssertEqual(g["iteration"] as? Int, 8)
        XCTAssertEqual(try XCTUnwrap(g["reward"] as? Double), try XCTUnwrap(m["reward@8"]), accuracy: 1e-12)
        XCTAssertTrue(try rlhf(["status", "--run", path("b")]).stdout.contains("GRPO iteration 8: reward"))
        let panels = try rlhf(["curves", "--run", path("b"), "--width", "80"]).stdout.split(separator: "\n").filter { $0.contains("  last ") }
        XCTAssertEqual(
            panels.map { String($0.prefix { $0 != " " }) },
            ["reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "entropy", "kl"])
        let html = try String(
            contentsOfFile: try rlhf(["report", "--run", path("b")]).stdout.replacingOccurrences(of: "wrote ", with: "")
                .trimmingCharacters(in: .whitespacesAndNewlines), encoding: .utf8)
        XCTAssertTrue(html.contains("<section id=\"grpo\">") && html.contains("Sample completions per GRPO iteration"))
        // Nothing is left to resume.
        let again = try rlhf(["grpo", "--run", path("b"), "--resume"], expect: 1)
        XCTAssertTrue(again.stderr.contains("finished"), again.stderr)
    }

    /// LoRA over bf16 frozen weights, RLOO, rewarded by the simulated labelers' scores: the
    /// checkpoints are adapters over the starting policy, and a resumed run is exact too.
    func testLoRAResumeIsExact() throws {
        try prepare("la", reward: false)
        let lexicon = dir.appendingPathComponent("lexicon")
        try FileManager.default.createDirectory(at: lexicon, withIntermediateDirectories: true)
        try "thanks\nglad\n".write(to: lexicon.appendingPathComponent("positive.txt"), atomically: true, encoding: .utf8)
        try "ugh\n".write(to: lexicon.appendingPathComponent("negative.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.copyItem(atPath: path("la"), toPath: path("lb"))
        let args = [
            "--iterations", "6", "--batch", "2", "--group", "4", "--response-length", "12", "--save-every", "2", "--advantage", "rloo",
            "--reward", "lexicon:1,length:0.1", "--lexicon", lexicon.path, "--target-length", "5", "--lora-rank", "4", "--frozen-dtype", "bf16",
            "--seed", "1",
        ]
        _ = try wholeAndResumed("grpo", args, a: path("la"), b: path("lb"), metric: "reward", step: 3, label: "GRPO")
        try assertSameRuns("la", "lb", iterations: 6)
        let s = try store("lb")
        let start = try s.models().first { $0.role == .policy }!, policy = try s.latestModel(role: .policy)!
        XCTAssertEqual(policy.baseId, start.id, "the checkpoint is adapters over the starting policy")
        XCTAssertTrue(policy.note?.contains("RLOO") ?? false)
        let m = try metrics("la")
        XCTAssertNotNil(m["rewards/lexicon/mean@6"])
        XCTAssertNotNil(m["rewards/length/mean@6"])
        XCTAssertNil(m["kl@6"], "β = 0: no KL")
        let panels = try rlhf(["curves", "--run", path("la"), "--stage", "grpo", "--width", "80"]).stdout.split(separator: "\n")
            .filter { $0.contains("  last ") }
        XCTAssertEqual(
            panels.map { String($0.prefix { $0 != " " }) },
            ["reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "entropy", "rewards/length/mean", "rewards/lexicon/mean"],
            "no kl panel without β; a panel per reward source")
    }

    /// A reward program that fails at the third iteration ends the stage with one line and keeps
    /// nothing of that iteration; once it is fixed, --resume continues from the last save.
    func testAFailingRewardProgramKeepsNothingOfItsIteration() throws {
        try XCTSkipUnless(FileManager.default.isExecutableFile(atPath: "/usr/bin/python3"), "needs /usr/bin/python3")
        try prepare("c")
        let counter = dir.appendingPathComponent("calls"), program = dir.appendingPathComponent("reward.py")
        try """
        import sys, json, os
        n = int(open("\(counter.path)").read()) + 1 if os.path.exists("\(counter.path)") else 1
        open("\(counter.path)", "w").write(str(n))
        items = [json.loads(line) for line in sys.stdin]
        print("scoring", len(items), file=sys.stderr)
        for i, d in enumerate(items):
            bad = n == 3 and not os.path.exists("\(dir.appendingPathComponent("fixed").path)") and i == 5
            print(json.dumps({"reward": float("nan") if bad else len(d["completion"]) % 7 + d["prompt_id"] % 2}))
        """.write(to: program, atomically: true, encoding: .utf8)
        let args = [
            "grpo", "--run", path("c"), "--iterations", "5", "--batch", "2", "--group", "4", "--response-length", "10", "--save-every", "2",
            "--reward", "rm:0.5,cmd:1", "--reward-cmd", "python3 '\(program.path)'",
        ]
        let failed = try rlhf(args, expect: 1)
        let errorLines = failed.stderr.split(separator: "\n").filter { $0.hasPrefix("rlhf grpo: error:") }
        XCTAssertEqual(errorLines.count, 1, failed.stderr)
        XCTAssertTrue(errorLines[0].contains("wrote line 6 '{\"reward\": NaN}'"), failed.stderr)
        XCTAssertTrue(failed.stderr.contains("scoring 8"), "the program's stderr is passed through")
        let s = try store("c")
        let run = try s.stageRuns(stage: "grpo")[0]
        XCTAssertEqual(run.status, .failed)
        XCTAssertEqual(try s.metrics(stageRunId: run.id, names: ["reward"]).map(\.step), [1, 2], "nothing of iteration 3")
        XCTAssertEqual(try s.latestModel(role: .policy)?.step, 2)

        try "".write(to: dir.appendingPathComponent("fixed"), atomically: true, encoding: .utf8)
        let resumed = try rlhf(["grpo", "--run", path("c"), "--resume"])
        XCTAssertTrue(resumed.stdout.contains("resuming GRPO run #\(run.id) after iteration 2"), resumed.stdout)
        XCTAssertEqual(try s.metrics(stageRunId: run.id, names: ["rewards/cmd/mean"]).map(\.step), [1, 2, 3, 4, 5])
        XCTAssertEqual(try s.stageRuns(stage: "grpo")[0].status, .succeeded)
    }

    func testErrors() throws {
        try prepare("e", reward: false)
        let noRM = try rlhf(["grpo", "--run", path("e")], expect: 1)
        XCTAssertTrue(noRM.stderr.contains("train-reward"), noRM.stderr)
        try rlhf(["grpo", "--run", path("e"), "--group", "1"], expect: 2)
        try rlhf(["grpo", "--run", path("e"), "--loss", "sum"], expect: 2)
        try rlhf(["grpo", "--run", path("e"), "--reward", "cmd"], expect: 2)
        try rlhf(["grpo", "--run", path("e"), "--batch", "3", "--group", "3", "--micro-batch", "2"], expect: 2)
        let nothing = try rlhf(["grpo", "--run", path("e"), "--resume"], expect: 1)
        XCTAssertTrue(nothing.stderr.contains("no GRPO run to resume"), nothing.stderr)
        let missing = try rlhf(["grpo", "--run", path("e"), "--reward", "lexicon", "--lexicon", dir.appendingPathComponent("none").path], expect: 1)
        XCTAssertTrue(missing.stderr.contains("cannot read the lexicon"), missing.stderr)
        XCTAssertTrue(try rlhf(["grpo", "--help"]).stdout.contains("--reward-timeout"))
    }
}
