import Foundation
import XCTest

@testable import RunStore

/// Every write path under a failing write: the binary runs under a file-size limit (`ulimit -f`,
/// which makes write(2) fail with EFBIG once a file would grow past it, as a full disk does with
/// ENOSPC), so checkpoints, optimizer state, SQLite's own writes, label and metric exports,
/// model exports and reports all hit a real failed write. Each command must fail with one clear
/// line; `rlhf status --check` must then find the database sound and every registered checkpoint
/// intact; no temporary file may be left behind; and a rerun without the limit must succeed.
final class WriteFailureTests: ScratchFolderTestCase {
    var run: String { dir.appendingPathComponent("run").path }

    /// Runs `rlhf args…` with files limited to `kib` KiB.
    func limited(_ kib: Int, _ args: [String]) throws -> CLIResult {
        try runCLI(args, cwd: dir, launcher: ["/bin/bash", "-c", "ulimit -f \(kib) && exec \"$0\" \"$@\""])
    }

    /// The command failed with exit status 1 and exactly one error line naming `reason`; the run
    /// checks out and holds no temporary files.
    func assertCleanFailure(_ r: CLIResult, _ reason: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        XCTAssertEqual(r.status, 1, "expected a failure: \(r.stdout)\n\(r.stderr)", file: file, line: line)
        let errors = r.stderr.split(separator: "\n").filter { $0.contains("error:") }
        XCTAssertEqual(errors.count, 1, "one error line: \(r.stderr)", file: file, line: line)
        XCTAssertTrue(reason.contains { r.stderr.contains($0) }, "the error says why: \(r.stderr)", file: file, line: line)
        XCTAssertFalse(r.stderr.contains("Fatal error") || r.stderr.contains("Crash"), r.stderr, file: file, line: line)
        let check = try rlhf(["status", "--run", run, "--check"], file: file, line: line)
        XCTAssertTrue(check.stdout.contains("check ok"), check.stdout, file: file, line: line)
        XCTAssertEqual(try temporaries(), [], "temporary files left behind", file: file, line: line)
    }

    /// The ThreadSanitizer runtime itself stops with SIGBUS when a model runs under a 64 KiB
    /// file-size limit (the same build without it, and the AddressSanitizer build, do not), so
    /// the tests with that limit run in the plain and AddressSanitizer builds only.
    func skipUnderThreadSanitizer() throws {
        if dlsym(nil, "__tsan_init") != nil {
            throw XCTSkip("the ThreadSanitizer runtime faults under a 64 KiB file-size limit; run this test without ThreadSanitizer")
        }
    }

    /// Hidden temporary names anywhere under the scratch folder.
    func temporaries() throws -> [String] {
        let all = FileManager.default.enumerator(atPath: dir.path)?.allObjects as? [String] ?? []
        return all.filter { ($0 as NSString).lastPathComponent.hasPrefix(".") && ($0.contains(".tmp-") || $0.contains(".old-")) }
    }

    @discardableResult
    func importPairs(_ n: Int, limitKiB: Int? = nil) throws -> CLIResult {
        let file = dir.appendingPathComponent("pairs-\(n).jsonl")
        let pairs = (0..<n).map {
            "{\"prompt\":\"question \($0) about the weather\",\"chosen\":\"thanks, glad to help with that\",\"rejected\":\"ugh whatever\"}"
        }
        try pairs.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        let args = ["labels", "import", file.path, "--run", run]
        return try limitKiB.map { try limited($0, args) } ?? rlhf(args)
    }

    func testCheckpointAndOptimizerStateWrites() throws {
        try rlhf(["init", "--run", run, "--base", "random:S"])
        try importPairs(60)
        // A checkpoint of config S is 3.4 MB; the database stays far below 1 MiB.
        let tooLarge = ["File too large"]
        try assertCleanFailure(try limited(1024, ["train-reward", "--run", run, "--epochs", "1", "--lr", "1e-3"]), tooLarge)
        XCTAssertTrue(try rlhf(["train-reward", "--run", run, "--epochs", "1", "--lr", "1e-3"]).stdout.contains("registered"))

        let ppo = ["ppo", "--run", run, "--iterations", "2", "--batch", "8", "--response-length", "8", "--save-every", "1"]
        let failedPPO = try limited(1024, ppo)
        try assertCleanFailure(failedPPO, tooLarge)
        XCTAssertTrue(failedPPO.stderr.contains("nothing was written"), "the message says the checkpoint was not half-written: \(failedPPO.stderr)")
        XCTAssertFalse(failedPPO.stderr.contains(".tmp-"), "the message names the checkpoint, not its temporary name: \(failedPPO.stderr)")
        XCTAssertTrue(try rlhf(["ppo", "--run", run, "--resume"]).stdout.contains("PPO finished: 2 iterations"))

        try assertCleanFailure(try limited(1024, ["dpo", "--run", run, "--epochs", "1", "--policy", "base"]), tooLarge)
        XCTAssertTrue(try rlhf(["dpo", "--run", run, "--resume"]).stdout.contains("DPO finished"))
        try rlhf(["status", "--run", run, "--check"])
    }

    func testDatabaseWrites() throws {
        try skipUnderThreadSanitizer()
        try rlhf(["init", "--run", run, "--base", "random:S"])
        // 300 pairs need far more than 64 KiB of write-ahead log; SQLite's shared-memory index
        // (32 KiB) and small transactions still fit.
        let sqliteFull = ["a write to the database failed", "the disk is full"]
        try assertCleanFailure(try importPairs(300, limitKiB: 64), sqliteFull)
        XCTAssertEqual(try RunStore(folder: URL(fileURLWithPath: run)).counts().rankings, 0, "an import is all or nothing")
        XCTAssertTrue(try importPairs(300).stdout.contains("imported 300 pairs"))

        // Metrics: every training step commits its figures, and the log outgrows the limit
        // before the first checkpoint is written.
        let train = ["train-reward", "--run", run, "--epochs", "1", "--lr", "1e-3", "--batch", "4"]
        try assertCleanFailure(try limited(64, train), sqliteFull)
        XCTAssertTrue(try rlhf(train).stdout.contains("registered"))

        let generate = ["generate", "--run", run, "--per-prompt", "2", "--max-new-tokens", "4"]
        try assertCleanFailure(try limited(64, generate), sqliteFull)
        let resumed = try rlhf(generate)
        XCTAssertEqual(try RunStore(folder: URL(fileURLWithPath: run)).counts().completions, 600 + 600, resumed.stdout)
    }

    /// A run folder the user cannot write: every command says so in one line and changes
    /// nothing, and all works again once the folder is writable. As root (who may write
    /// anything) the commands run as user nobody through setpriv, from a copy of the binary.
    func testReadOnlyRunFolder() throws {
        try rlhf(["init", "--run", run, "--base", "random:S"])
        try importPairs(40)
        var launcher: [String] = []
        if getuid() == 0 {
            guard FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv") else { throw XCTSkip("setpriv (util-linux) is missing") }
            let copy = dir.appendingPathComponent("rlhf-copy")
            try FileManager.default.copyItem(at: rlhfBinary, to: copy)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: dir.path)
            launcher = ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "/bin/sh", "-c", "exec '\(copy.path)' \"$@\""]
        }
        let db = URL(fileURLWithPath: run + "/run.sqlite")
        func lock(_ on: Bool) throws {
            try FileManager.default.setAttributes([.posixPermissions: on ? 0o444 : 0o644], ofItemAtPath: db.path)
            for path in [run, run + "/checkpoints"] {
                try FileManager.default.setAttributes([.posixPermissions: on ? 0o555 : 0o755], ofItemAtPath: path)
            }
        }
        let before = try Data(contentsOf: db)
        try lock(true)
        defer { try? lock(false) }
        for args in [
            ["status"], ["train-reward", "--epochs", "1"], ["labels", "import", dir.appendingPathComponent("pairs-40.jsonl").path],
            ["generate", "--max-new-tokens", "4"], ["ppo", "--iterations", "1"],
        ] {
            let r = try runCLI(args + ["--run", run], cwd: dir, launcher: launcher)
            XCTAssertEqual(r.status, 1, "\(args): \(r.stdout) \(r.stderr)")
            let errors = r.stderr.split(separator: "\n").filter { $0.contains("error:") }
            XCTAssertEqual(errors.count, 1, "\(args): one error line: \(r.stderr)")
            XCTAssertTrue(r.stderr.contains("read-only") && r.stderr.contains("must be writable"), "\(args): \(r.stderr)")
        }
        XCTAssertEqual(try Data(contentsOf: db), before, "the database is unchanged")
        try lock(false)
        try rlhf(["status", "--run", run, "--check"])
        XCTAssertTrue(try rlhf(["train-reward", "--run", run, "--epochs", "1"]).stdout.contains("registered"))
    }

    func testExportsAndReports() throws {
        try skipUnderThreadSanitizer()
        try rlhf(["init", "--run", run, "--base", "random:S"])
        try importPairs(300)
        // Enough metric points that the report, the SVG and the metrics export outgrow 64 KiB.
        do {
            let store = try RunStore(folder: URL(fileURLWithPath: run))
            let id = try store.beginStageRun(stage: "ppo", config: "{}", seed: 1)
            for step in 1...1500 {
                let x = Double(step)
                try store.logMetrics(
                    stageRunId: id, step: step,
                    [
                        ("objective/scores", sin(x / 50)), ("objective/kl", x / 1000), ("objective/entropy", cos(x / 70)),
                        ("loss/value", 1 / x), ("policy/clipfrac", 0.1), ("objective/kl_coef", 0.05),
                    ])
            }
            try store.finishStageRun(id, status: .succeeded)
        }
        let outputs: [(args: [String], file: String, limit: Int)] = [
            (["labels", "export", "--run", run, "--format", "rankings", "-o", "labels.jsonl"], "labels.jsonl", 64),
            (["metrics", "export", "--run", run, "--format", "csv", "-o", "metrics.csv"], "metrics.csv", 64),
            (["report", "--run", run, "-o", "report.html"], "report.html", 64),
            (["curves", "--run", run, "--stage", "ppo", "--svg", "curves.svg"], "curves.svg", 64),
            (["export", "--run", run, "-o", "exported"], "exported", 1024),
        ]
        for o in outputs {
            let target = dir.appendingPathComponent(o.file)
            try assertCleanFailure(try limited(o.limit, o.args), ["File too large"])
            XCTAssertFalse(FileManager.default.fileExists(atPath: target.path), "\(o.file) must not exist half-written")
            try rlhf(o.args)
            XCTAssertTrue(FileManager.default.fileExists(atPath: target.path), o.file)
            if o.file != "exported" {
                let size = try FileManager.default.attributesOfItem(atPath: target.path)[.size] as! Int
                XCTAssertGreaterThan(size, o.limit * 1024, "\(o.file) must outgrow the limit for the test to mean anything")
            }
        }
    }
}
