import Foundation
import XCTest

@testable import RunStore

/// `rlhf ppo` through the binary: a run, and a run killed with SIGKILL and resumed, whose metrics
/// must equal the uninterrupted run's.
final class PPOCommandTests: ScratchFolderTestCase {

    func path(_ run: String) -> String { dir.appendingPathComponent(run).path }

    func ppoMetrics(_ run: String) throws -> [String: Double] {
        let store = try RunStore(folder: URL(fileURLWithPath: path(run)))
        let id = try store.stageRuns(stage: "ppo").first!.id
        var out: [String: Double] = [:]
        for m in try store.metrics(stageRunId: id) where !m.name.hasPrefix("time/") { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    func testKilledAndResumedRunMatchesAnUninterruptedOne() throws {
        try rlhf(["init", "--run", path("a"), "--base", "random:S"])
        let pairs = (0..<60).map { "{\"prompt\":\"question \($0)\",\"chosen\":\"thanks, glad to help\",\"rejected\":\"ugh whatever\"}" }
        let file = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", path("a")])
        try rlhf(["train-reward", "--run", path("a"), "--epochs", "1", "--lr", "1e-3"])
        try rlhf(["ppo", "--run", path("a"), "--iterations", "1", "--expect-nothing"], expect: 2)
        try FileManager.default.copyItem(atPath: path("a"), toPath: path("b"))

        let args = ["--iterations", "10", "--batch", "16", "--response-length", "24", "--save-every", "2", "--lr", "1e-4", "--seed", "3"]
        let (whole, resumed) = try wholeAndResumed("ppo", args, a: path("a"), b: path("b"), metric: "objective/kl", step: 5, label: "PPO")
        XCTAssertTrue(whole.stdout.contains("PPO finished: 10 iterations"), whole.stdout)
        XCTAssertTrue(resumed.stdout.contains("PPO finished"), resumed.stdout)

        let a = try ppoMetrics("a"), b = try ppoMetrics("b")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        XCTAssertEqual(a.count, 10 * (a.keys.filter { $0.hasSuffix("@1") }.count))
        for (k, v) in a { XCTAssertEqual(b[k] ?? .nan, v, accuracy: 1e-9 + 1e-6 * abs(v), k) }
        // Both end with the same registered policy weights.
        let sa = try RunStore(folder: URL(fileURLWithPath: path("a"))), sb = try RunStore(folder: URL(fileURLWithPath: path("b")))
        XCTAssertEqual(try sa.latestModel(role: .policy)?.sha256, try sb.latestModel(role: .policy)?.sha256)
        XCTAssertEqual(try sb.latestModel(role: .policy)?.step, 10)
        XCTAssertEqual(try sb.stageRuns(stage: "ppo").count, 1, "the resume continued the same stage run")
        XCTAssertEqual(try sb.samples(stageRunId: sb.stageRuns(stage: "ppo")[0].id).count, 40, "4 samples per iteration, none duplicated")

        // status shows the latest iteration, and nothing is left to resume.
        let s = try JSONSerialization.jsonObject(with: Data(try rlhf(["status", "--run", path("b"), "--json"]).stdout.utf8)) as! [String: Any]
        XCTAssertEqual((s["ppo"] as? [String: Any])?["iteration"] as? Int, 10)
        let again = try rlhf(["ppo", "--run", path("b"), "--resume"], expect: 1)
        XCTAssertTrue(again.stderr.contains("finished"), again.stderr)
    }

    func testPPOErrors() throws {
        try rlhf(["init", "--run", path("c"), "--base", "random:S"])
        let noRM = try rlhf(["ppo", "--run", path("c")], expect: 1)
        XCTAssertTrue(noRM.stderr.contains("train-reward"), noRM.stderr)
        try rlhf(["ppo", "--run", path("c"), "--batch", "10", "--minibatches", "4"], expect: 2)
        try rlhf(["ppo", "--run", path("c"), "--missing-eos-penalty", "big"], expect: 2)
        let nothing = try rlhf(["ppo", "--run", path("c"), "--resume"], expect: 1)
        XCTAssertTrue(nothing.stderr.contains("no PPO run to resume"), nothing.stderr)
    }
}
