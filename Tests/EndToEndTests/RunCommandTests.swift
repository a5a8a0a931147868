import Foundation
import XCTest

@testable import RunStore

/// `rlhf init`, `prompts add`, `generate` and `status` through the built binary, in a scratch
/// working directory (runs/ is created there).
final class RunCommandTests: ScratchFolderTestCase {
    var cwd: URL! { dir }

    @discardableResult
    func rlhf(_ args: String..., expect status: Int32 = 0, line: UInt = #line) throws -> CLIResult {
        try rlhf(args, expect: status, line: line)
    }

    func write(_ name: String, _ text: String) -> String {
        let url = cwd.appendingPathComponent(name)
        try! Data(text.utf8).write(to: url)
        return url.path
    }

    func statusJSON(_ run: String = "default") throws -> [String: Any] {
        let r = try rlhf("status", "--run", run, "--json")
        return (try JSONSerialization.jsonObject(with: Data(r.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    func testInitPromptsGenerateStatus() throws {
        try rlhf("init", "--base", "random:S")
        XCTAssertTrue(FileManager.default.fileExists(atPath: cwd.appendingPathComponent("runs/default/run.sqlite").path))
        XCTAssertTrue(FileManager.default.fileExists(atPath: cwd.appendingPathComponent("runs/default/checkpoints/base/model.safetensors").path))
        let again = try rlhf("init", "--base", "random:S", expect: 1)
        XCTAssertTrue(again.stderr.contains("--force"), again.stderr)
        let add = try rlhf(
            "prompts", "add",
            write("p.jsonl", "{\"prompt\":\"Hi there\",\"topic\":\"greeting\"}\n{\"prompt\":\"What is rain?\"}\n{\"prompt\":\"Hi there\"}\n"))
        XCTAssertTrue(add.stdout.contains("imported 2 train prompts, skipped 1 duplicate"), add.stdout)
        try rlhf("prompts", "add", write("e.txt", "eval one\neval two\neval three\n"), "--split", "eval")
        let gen = try rlhf("generate", "--per-prompt", "3", "--max-new-tokens", "10")
        XCTAssertTrue(gen.stdout.contains("generated 6 completions for 2 prompts"), gen.stdout)
        let noop = try rlhf("generate", "--per-prompt", "3", "--max-new-tokens", "10")
        XCTAssertTrue(noop.stdout.contains("nothing to do"), noop.stdout)
        let s = try statusJSON()
        XCTAssertEqual(s["schema_version"] as? Int, Schema.currentVersion)
        XCTAssertEqual(s["prompts"] as? [String: Int], ["train": 2, "eval": 3])
        XCTAssertEqual(s["completions"] as? Int, 6)
        XCTAssertEqual(s["comparisons"] as? Int, 0)
        XCTAssertEqual(s["models"] as? [String: Int], ["base": 1, "policy": 1, "reference": 1])
        XCTAssertEqual(s["stage_runs"] as? [String: Int], ["succeeded": 4], "init, two imports, one generate (the no-op makes none)")
        XCTAssertTrue(s["reward"] is NSNull)
        XCTAssertTrue(s["ppo"] is NSNull)
        XCTAssertEqual((s["policy"] as? [String: Any])?["path"] as? String, "checkpoints/base")
        let text = try rlhf("status")
        XCTAssertTrue(text.stdout.contains("2 train, 3 eval"), text.stdout)
        // --force replaces the run.
        try rlhf("init", "--base", "random:S", "--force", "--seed", "3")
        XCTAssertEqual(try statusJSON()["completions"] as? Int, 0)
        // A path works as --run, and a missing run says how to create one.
        try rlhf("init", "--run", cwd.appendingPathComponent("elsewhere/r1").path, "--base", "random:S")
        let missing = try rlhf("status", "--run", "nope", expect: 1)
        XCTAssertTrue(missing.stderr.contains("rlhf init"), missing.stderr)
    }

    func testInitFromAHuggingFaceFolderKeepsTheWeights() throws {
        let hf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("TransformerCoreTests/Fixtures/hf/tiny-gpt2-legacy")
        try rlhf("init", "--base", hf.path)
        let copy = cwd.appendingPathComponent("runs/default/checkpoints/base").path
        let a = try rlhf("logprobs", "--model", hf.path, "--text", "Hello world", "--json")
        let b = try rlhf("logprobs", "--model", copy, "--text", "Hello world", "--json")
        XCTAssertEqual(a.stdout, b.stdout)
        let bad = try rlhf("init", "--run", "x", "--base", cwd.path, expect: 1)
        XCTAssertTrue(bad.stderr.contains("config.json"), bad.stderr)
        XCTAssertFalse(FileManager.default.fileExists(atPath: cwd.appendingPathComponent("runs/x").path), "a failed init leaves nothing behind")
    }

    func testImportErrorsLeaveTheRunUnchanged() throws {
        try rlhf("init", "--base", "random:S")
        try rlhf("prompts", "add", write("ok.jsonl", "{\"prompt\":\"first\"}\n"))
        let before = try statusJSON()["prompts"] as? [String: Int]
        let cases: [(String, String, String)] = [
            ("bad.jsonl", "{\"prompt\":\"a\"}\n{\"prompt\":\"b\",}\n", "bad.jsonl:2: invalid JSON"),
            ("nokey.jsonl", "{\"prompt\":\"a\"}\n{\"prompt\":\"b\"}\n{\"text\":\"c\"}\n", "nokey.jsonl:3: no \"prompt\" key"),
            ("empty.jsonl", "", "no prompts"),
        ]
        for (name, body, needle) in cases {
            let r = try rlhf("prompts", "add", write(name, body), expect: 1)
            XCTAssertTrue(r.stderr.contains(needle), r.stderr)
            XCTAssertEqual(r.stderr.split(separator: "\n").count, 1)
        }
        let utf8 = cwd.appendingPathComponent("bad.txt")
        try Data([0x61, 0x0A, 0x62, 0xC3, 0x28, 0x0A]).write(to: utf8)
        let r = try rlhf("prompts", "add", utf8.path, expect: 1)
        XCTAssertTrue(r.stderr.contains("bad.txt:2: not valid UTF-8"), r.stderr)
        XCTAssertEqual(try statusJSON()["prompts"] as? [String: Int], before)
        try rlhf("prompts", "add", "missing.jsonl", expect: 1)
        try rlhf("prompts", "add", write("x.txt", "a\n"), "--split", "test", expect: 2)
        try rlhf("prompts", "add", write("y.txt", "a\n"), "--key", "question", "--format", "text", expect: 2)
        // --key reads another key: GSM8K's question.
        let q = try rlhf("prompts", "add", write("gsm.jsonl", "{\"question\":\"2+2?\",\"answer\":\"4\"}\n"), "--key", "question")
        XCTAssertTrue(q.stdout.contains("imported 1 train prompt,"), q.stdout)
    }

    func testANewerDatabaseIsRefused() throws {
        try rlhf("init", "--base", "random:S")
        // user_version lives at byte 60 of the database header, big-endian.
        let db = cwd.appendingPathComponent("runs/default/run.sqlite")
        let h = try FileHandle(forUpdating: db)
        try h.seek(toOffset: 60)
        h.write(Data([0, 0, 0, 9]))
        try h.close()
        let r = try rlhf("status", expect: 1)
        XCTAssertTrue(r.stderr.contains("newer") && r.stderr.contains("upgrade rlhf"), r.stderr)
    }

    func prompts(_ n: Int) -> String {
        (0..<n).map { "{\"prompt\":\"Tell me about item \($0) and why it matters\"}" }.joined(separator: "\n") + "\n"
    }

    func texts(_ run: String) throws -> [String: [String]] {
        let store = try RunStore(folder: cwd.appendingPathComponent("runs/\(run)"))
        var out: [String: [String]] = [:]
        for p in try store.prompts() { out[p.text] = try store.completions(promptId: p.id).map(\.text) }
        return out
    }

    func testGenerateResumesAfterSIGKILL() throws {
        let file = write("many.jsonl", prompts(160))
        for run in ["killed", "whole"] {
            try rlhf("init", "--run", run, "--base", "random:S")
            try rlhf("prompts", "add", file, "--run", run)
        }
        try rlhf("generate", "--run", "whole", "--batch", "4", "--seed", "9")

        let p = Process()
        p.executableURL = rlhfBinary
        p.arguments = ["generate", "--run", "killed", "--batch", "4", "--seed", "9"]
        p.currentDirectoryURL = cwd
        p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
        try p.run()
        // Kill it once some batches are in, while it is still going.
        var seen = 0
        let deadline = Date().addingTimeInterval(60)
        while Date() < deadline {
            seen = (try statusJSON("killed")["completions"] as? Int) ?? 0
            if seen >= 40 || !p.isRunning { break }
            usleep(20_000)
        }
        kill(p.processIdentifier, SIGKILL)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationReason, .uncaughtSignal, "the test must kill generate mid-run; make the workload bigger if it finished first")
        let afterKill = try statusJSON("killed")
        let kept = afterKill["completions"] as! Int
        XCTAssertGreaterThanOrEqual(kept, seen)
        XCTAssertLessThan(kept, 640)
        XCTAssertEqual(kept % 4, 0, "whole batches only")
        XCTAssertEqual((afterKill["stage_runs"] as? [String: Int])?["interrupted"], 1)
        let rerun = try rlhf("generate", "--run", "killed", "--batch", "4", "--seed", "9")
        XCTAssertTrue(rerun.stdout.contains("generated \(640 - kept) completions"), rerun.stdout)
        XCTAssertEqual(try statusJSON("killed")["completions"] as? Int, 640)
        XCTAssertEqual(try texts("killed"), try texts("whole"), "the resumed run drew the same samples as the uninterrupted one")
    }

    func testTwoProcessesWriteOneRunAtOnce() throws {
        try rlhf("init", "--base", "random:S")
        try rlhf("prompts", "add", write("t.jsonl", prompts(60)))
        try rlhf("prompts", "add", write("e.jsonl", (0..<60).map { "{\"prompt\":\"eval \($0)\"}" }.joined(separator: "\n")), "--split", "eval")
        let procs = ["train", "eval"].map { split -> Process in
            let p = Process()
            p.executableURL = rlhfBinary
            p.arguments = ["generate", "--split", split, "--batch", "4", "--max-new-tokens", "24"]
            p.currentDirectoryURL = cwd
            p.standardOutput = FileHandle.nullDevice; p.standardError = FileHandle.nullDevice
            return p
        }
        for p in procs { try p.run() }
        // A third process reads while they write.
        var reads = 0
        while procs.contains(where: \.isRunning) { _ = try statusJSON(); reads += 1 }
        for p in procs { p.waitUntilExit(); XCTAssertEqual(p.terminationStatus, 0) }
        let s = try statusJSON()
        XCTAssertEqual(s["completions"] as? Int, 480)
        XCTAssertEqual(s["stage_runs"] as? [String: Int], ["succeeded": 5])
        XCTAssertGreaterThan(reads, 0)
    }
}

extension RunCommandTests {
    func testBundledPromptsImport() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        try rlhf("init", "--base", "random:S")
        let t = try rlhf("prompts", "add", root.appendingPathComponent("prompts/train.jsonl").path)
        XCTAssertTrue(t.stdout.contains("imported 400 train prompts, skipped 0"), t.stdout)
        let e = try rlhf("prompts", "add", root.appendingPathComponent("prompts/eval.jsonl").path, "--split", "eval")
        XCTAssertTrue(e.stdout.contains("imported 120 eval prompts, skipped 0"), e.stdout)
        let store = try RunStore(folder: cwd.appendingPathComponent("runs/default"))
        let first = try store.prompts(split: .train)[0]
        XCTAssertNotNil(first.metadata?.range(of: "\"topic\""))
    }
}

extension RunCommandTests {
    func testCtrlCStopsAfterTheBatchInFlight() throws {
        try rlhf("init", "--base", "random:S")
        try rlhf("prompts", "add", write("many.jsonl", prompts(200)))
        let p = Process()
        p.executableURL = rlhfBinary
        p.arguments = ["generate", "--batch", "4"]
        p.currentDirectoryURL = cwd
        let err = Pipe()
        p.standardOutput = FileHandle.nullDevice; p.standardError = err
        try p.run()
        while ((try statusJSON()["completions"] as? Int) ?? 0) < 8 && p.isRunning { usleep(20_000) }
        kill(p.processIdentifier, SIGINT)
        let message = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        p.waitUntilExit()
        XCTAssertEqual(p.terminationStatus, 1, message)
        XCTAssertTrue(message.contains("interrupted; the completions written so far are kept"), message)
        let s = try statusJSON()
        XCTAssertEqual((s["stage_runs"] as? [String: Int])?["interrupted"], 1)
        XCTAssertEqual((s["completions"] as! Int) % 4, 0)
        XCTAssertLessThan(s["completions"] as! Int, 800)
    }
}
