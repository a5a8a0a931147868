import Foundation
import XCTest

@testable import RunStore

/// `rlhf train-reward`, `rlhf reward score` and `status` through the binary, on imported pairs.
final class RewardCommandTests: ScratchFolderTestCase {
    var run: String { dir.appendingPathComponent("run").path }

    func pairsFile(_ n: Int) throws -> String {
        let lines = (0..<n).map { i in
            "{\"prompt\":\"question \(i)\",\"chosen\":\"thanks, happy to help with \(i)\",\"rejected\":\"ugh, whatever, \(i) is stupid\"}"
        }
        let url = dir.appendingPathComponent("pairs.jsonl")
        try lines.joined(separator: "\n").write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testTrainScoreStatusAndCleanRerunAfterKill() throws {
        try rlhf(["init", "--run", run, "--base", "random:S"])
        let none = try rlhf(["train-reward", "--run", run], expect: 1)
        XCTAssertTrue(none.stderr.contains("no comparisons"), none.stderr)
        try rlhf(["labels", "import", try pairsFile(200), "--run", run])

        // Killed mid-training: nothing registered, no half-written folder; the rerun is clean.
        let p = Process()
        p.executableURL = rlhfBinary
        p.arguments = ["train-reward", "--run", run, "--epochs", "50", "--lr", "1e-3"]
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        let store = try RunStore(folder: URL(fileURLWithPath: run))
        while try p.isRunning && store.metrics(names: ["reward/loss"]).count < 5 { usleep(20_000) }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal)
        XCTAssertNil(try store.latestModel(role: .reward))

        let r = try rlhf(["train-reward", "--run", run, "--epochs", "2", "--lr", "1e-3", "--batch", "16"])
        XCTAssertTrue(r.stdout.contains("registered reward model"), r.stdout)
        XCTAssertTrue(r.stderr.contains("epoch 2:"), r.stderr)
        XCTAssertEqual(try store.models().filter { $0.role == .reward }.count, 1)
        let checkpoints = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("run/checkpoints").path).sorted()
        XCTAssertEqual(checkpoints.filter { $0.hasPrefix(".") }, [], "no temporary folders are left")
        XCTAssertEqual(checkpoints.count, 2)
        let runs = try store.stageRuns(stage: "train-reward")
        XCTAssertEqual(runs.map(\.status), [.succeeded, .interrupted])

        let good = try rlhf(["reward", "score", "--run", run, "--prompt", "question 7", "--completion", "thanks, happy to help with 7", "--json"])
        let bad = try rlhf(["reward", "score", "--run", run, "--prompt", "question 7", "--completion", "ugh, whatever, 7 is stupid", "--json"])
        func score(_ s: String) -> Double { ((try? JSONSerialization.jsonObject(with: Data(s.utf8))) as? [String: Any])?["score"] as? Double ?? .nan }
        XCTAssertGreaterThan(score(good.stdout), score(bad.stdout))
        let plain = try rlhf(["reward", "score", "--run", run, "--prompt", "q", "--completion", "c"])
        XCTAssertNotNil(Double(plain.stdout.trimmingCharacters(in: .whitespacesAndNewlines)))

        let status = try rlhf(["status", "--run", run, "--json"])
        let s = try JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as! [String: Any]
        let reward = try XCTUnwrap(s["reward"] as? [String: Any])
        XCTAssertGreaterThan(reward["val_accuracy"] as? Double ?? 0, 0.5)
        XCTAssertEqual((s["models"] as? [String: Int])?["reward"], 1)
        try rlhf(["train-reward", "--run", run, "--val-fraction", "1.5"], expect: 2)
    }
}
