import Foundation
import XCTest

@testable import RunStore

/// `rlhf dpo` and `rlhf compare` through the binary: a DPO run killed with SIGKILL and resumed,
/// whose metrics and weights must equal an uninterrupted run's; its curves; usage errors; and a
/// head-to-head comparison.
final class DPOCommandTests: ScratchFolderTestCase {
    func path(_ run: String) -> String { dir.appendingPathComponent(run).path }

    func dpoMetrics(_ run: String) throws -> [String: Double] {
        let store = try RunStore(folder: URL(fileURLWithPath: path(run)))
        let id = try XCTUnwrap(store.stageRuns(stage: "dpo").first).id
        var out: [String: Double] = [:]
        for m in try store.metrics(stageRunId: id) { out["\(m.name)@\(m.step)"] = m.value }
        return out
    }

    /// A run with a random base and 60 imported pairs over 20 prompts.
    func makeRun(_ name: String) throws {
        try rlhf(["init", "--run", path(name), "--base", "random:S"])
        let pairs = (0..<60).map {
            "{\"prompt\":\"question \($0 % 20)\",\"chosen\":\"thanks, glad to help \($0)\",\"rejected\":\"ugh whatever \($0)\"}"
        }
        let file = dir.appendingPathComponent("pairs.jsonl")
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["labels", "import", file.path, "--run", path(name)])
    }

    func testKilledAndResumedRunMatchesAnUninterruptedOne() throws {
        try makeRun("a")
        try FileManager.default.copyItem(atPath: path("a"), toPath: path("b"))
        let args = ["--epochs", "3", "--batch", "4", "--save-every", "2", "--lr", "3e-4", "--seed", "3"]
        let (whole, resumed) = try wholeAndResumed("dpo", args, a: path("a"), b: path("b"), metric: "loss", step: 9, label: "DPO")
        XCTAssertTrue(whole.stdout.contains("DPO finished: 42 steps"), whole.stdout)
        XCTAssertTrue(resumed.stdout.contains("DPO finished: 42 steps"), resumed.stdout)

        let a = try dpoMetrics("a"), b = try dpoMetrics("b")
        XCTAssertEqual(Set(a.keys), Set(b.keys))
        XCTAssertEqual(a.keys.filter { $0.hasPrefix("loss@") }.count, 42)
        for (k, v) in a { XCTAssertEqual(b[k] ?? .nan, v, accuracy: 1e-9 + 1e-6 * abs(v), k) }
        let sa = try RunStore(folder: URL(fileURLWithPath: path("a"))), store = try RunStore(folder: URL(fileURLWithPath: path("b")))
        XCTAssertEqual(try sa.latestModel(role: .policy)?.sha256, try store.latestModel(role: .policy)?.sha256)
        XCTAssertEqual(try store.stageRuns(stage: "dpo").count, 1, "the resume continued the same stage run")
        XCTAssertEqual(try store.stageRuns(stage: "dpo").first?.status, .succeeded)
        let again = try rlhf(["dpo", "--run", path("b"), "--resume"], expect: 1)
        XCTAssertTrue(again.stderr.contains("finished"), again.stderr)

        // status shows the last validation figures.
        let st = try JSONSerialization.jsonObject(with: Data(try rlhf(["status", "--run", path("b"), "--json"]).stdout.utf8)) as! [String: Any]
        XCTAssertEqual((st["dpo"] as? [String: Any])?["step"] as? Int, 42)
        XCTAssertEqual((st["dpo"] as? [String: Any])?["eval_rewards/accuracies"] as? Double, b["eval_rewards/accuracies@42"])
        // The curves of the run, and the comparison of the trained policy with the base.
        let curves = try rlhf(["curves", "--run", path("a"), "--stage", "dpo", "--width", "80"])
        XCTAssertTrue(curves.stdout.contains("rewards/accuracies") && curves.stdout.contains("eval_rewards/accuracies"), curves.stdout)
        let evalFile = dir.appendingPathComponent("eval.txt")
        try "how are you?\nsay something kind\nwhat is tea?".write(to: evalFile, atomically: true, encoding: .utf8)
        try rlhf(["prompts", "add", evalFile.path, "--run", path("a"), "--split", "eval"])
        let final = try XCTUnwrap(sa.latestModel(role: .policy)), base = try XCTUnwrap(sa.latestModel(role: .base))
        let c = try rlhf(["compare", "--run", path("a"), "--a", "\(final.id)", "--b", "\(base.id)", "--judge", "length", "--samples", "2", "--json"])
        let j = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(c.stdout.utf8)) as? [String: Any], c.stdout)
        XCTAssertEqual(j["pairs"] as? Int, 6)
        XCTAssertEqual((j["wins"] as? Int ?? 0) + (j["losses"] as? Int ?? 0) + (j["ties"] as? Int ?? 0), 6)
        XCTAssertEqual(try sa.stageRuns(stage: "compare").first?.status, .succeeded)
    }

    func testCtrlCSavesTheStepReached() throws {
        try makeRun("i")
        let p = Process()
        p.executableURL = rlhfBinary
        p.arguments = ["dpo", "--run", path("i"), "--epochs", "20", "--batch", "4", "--save-every", "1000"]
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        let store = try RunStore(folder: URL(fileURLWithPath: path("i")))
        while try p.isRunning && store.metrics(names: ["loss"]).map(\.step).max() ?? 0 < 3 { usleep(2_000) }
        kill(p.processIdentifier, SIGINT)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 1, message)
        XCTAssertTrue(message.contains("continue with 'rlhf dpo --resume'"), message)
        let run = try XCTUnwrap(store.stageRuns(stage: "dpo").first)
        XCTAssertEqual(run.status, .interrupted)
        // The checkpoint of the step it stopped at is registered, and nothing logged is past it.
        let last = try XCTUnwrap(store.metrics(stageRunId: run.id, names: ["loss"]).map(\.step).max())
        XCTAssertLessThan(last, 140, "stopped well before the end")
        XCTAssertEqual(try store.latestModel(role: .policy)?.step, last)
        XCTAssertEqual(try store.latestModel(role: .policy)?.stageRunId, run.id)
    }

    func testDPOAndCompareErrors() throws {
        try rlhf(["init", "--run", path("c"), "--base", "random:S"])
        let none = try rlhf(["dpo", "--run", path("c")], expect: 1)
        XCTAssertTrue(none.stderr.contains("no comparisons"), none.stderr)
        for bad in [["--loss", "kto"], ["--loss", "ipo", "--label-smoothing", "0.1"], ["--beta", "0"], ["--beta", "x"], ["--policy", "latest"]] {
            let r = try rlhf(["dpo", "--run", path("c")] + bad, expect: 2)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1, r.stderr)
        }
        let nothing = try rlhf(["dpo", "--run", path("c"), "--resume"], expect: 1)
        XCTAssertTrue(nothing.stderr.contains("no DPO run to resume"), nothing.stderr)
        try rlhf(["compare", "--run", path("c"), "--a", "2"], expect: 2)
        try rlhf(["compare", "--run", path("c"), "--a", "2", "--b", "1", "--judge", "vibes"], expect: 2)
        let noEval = try rlhf(["compare", "--run", path("c"), "--a", "2", "--b", "1", "--judge", "length"], expect: 1)
        XCTAssertTrue(noEval.stderr.contains("no eval prompts"), noEval.stderr)
        let noRM = try rlhf(["compare", "--run", path("c"), "--a", "2", "--b", "1"], expect: 1)
        XCTAssertTrue(noRM.stderr.contains("no reward model"), noRM.stderr)
    }
}
