import Foundation
import XCTest

@testable import RunStore

/// `rlhf label` in a real pseudo-terminal, and the simulated labelers and label files through the binary.
final class LabelCommandTests: ScratchFolderTestCase {
    var runPath: String { dir.appendingPathComponent("run").path }
    static let repo = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()

    func makeRun(prompts: [String], perPrompt: Int = 3) throws {
        try rlhf(["init", "--run", runPath, "--base", "random:S"])
        let file = dir.appendingPathComponent("p.txt")
        try prompts.joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["prompts", "add", file.path, "--run", runPath])
        try rlhf(["generate", "--run", runPath, "--per-prompt", "\(perPrompt)", "--max-new-tokens", "8"])
    }

    func label(_ extra: [String] = []) throws -> PTYProcess {
        try PTYProcess(
            rlhfBinary,
            [
                "label", "--run", runPath, "--annotator", "tester", "--order", "fixed",
                "--guidelines", Self.repo.appendingPathComponent("labels/guidelines.md").path,
            ] + extra)
    }

    func testRankKillRestartUndoAndEdit() throws {
        try makeRun(prompts: ["first item", "second item", "third item", "fourth item"])
        // Hostile text among the third item's completions.
        do {
            let store = try RunStore(folder: URL(fileURLWithPath: runPath))
            let third = try store.prompts().first { $0.text == "third item" }!
            let run = try store.beginStageRun(stage: "test", config: "{}", seed: nil)
            let policy = try store.latestModel(role: .policy)!.id
            try store.addCompletions(
                ["\u{1B}]0;pwned\u{07}title \u{1B}[2J wiped", "carriage\rreturn \u{1B}[31mred"].map {
                    NewCompletion(
                        promptId: third.id, modelId: policy, stageRunId: run, text: $0, tokenIds: [], finishReason: "eos", logprobSum: 0,
                        sampling: "{}")
                })
            try store.finishStageRun(run, status: .succeeded)
        }

        let p1 = try label()
        XCTAssertTrue(p1.waitFor("first item"), p1.text)
        XCTAssertTrue(p1.waitFor("0/4 done"))
        p1.markOutput()
        p1.send("21\r") // 2 best, then 1; Enter puts 3 last
        XCTAssertTrue(p1.waitFor("second item"), p1.text)
        p1.markOutput()
        p1.send("3=1\r") // 3 and 1 tie for best; 2 last
        XCTAssertTrue(p1.waitFor("third item"), p1.text)
        p1.kill(SIGKILL)
        XCTAssertEqual(p1.wait(), 128 + SIGKILL)

        let store = try RunStore(folder: URL(fileURLWithPath: runPath))
        var rankings = try store.rankings(annotator: "tester")
        XCTAssertEqual(rankings.count, 2, "both submitted rankings survive kill -9")
        XCTAssertEqual(rankings.map { $0.ranking.ranks ?? [] }, [[2, 1, 3], [1, 2, 1]])
        XCTAssertEqual(try store.prompt(id: rankings[1].ranking.promptId)?.text, "second item")

        let p2 = try label()
        XCTAssertTrue(p2.waitFor("third item"), "the restart shows the first item not yet ranked: \(p2.text)")
        XCTAssertTrue(p2.waitFor("2/4 done"))
        XCTAssertTrue(p2.waitFor("\\e]0;pwned\\x07title \\e[2J wiped"), p2.text)
        XCTAssertTrue(p2.waitFor("carriage\\rreturn \\e[31mred"))
        XCTAssertFalse(p2.text.contains("\u{1B}]0;pwned"), "an OSC sequence from model text reached the terminal")
        XCTAssertFalse(p2.text.contains("\u{07}"))
        XCTAssertFalse(p2.text.contains("\u{1B}[31mred"))
        p2.markOutput()
        p2.send("u")
        XCTAssertTrue(p2.waitFor("editing"), p2.text)
        XCTAssertTrue(p2.waitFor("second item"))
        p2.markOutput()
        p2.send("\u{7F}\u{7F}23\r") // drop "2" and the tied "1", then rank 2 and 3 after 3… → 1 > 2 > 3
        XCTAssertTrue(p2.waitFor("change saved"), p2.text)
        XCTAssertTrue(p2.waitFor("third item"))
        p2.send("q")
        XCTAssertEqual(p2.wait(), 0)
        XCTAssertTrue(p2.text.contains("\u{1B}[?1049l"), "the alternate screen is left on exit")

        rankings = try store.rankings(annotator: "tester")
        XCTAssertEqual(rankings.map { $0.ranking.ranks ?? [] }, [[2, 1, 3], [1, 2, 3]])
        let all = try store.rankings(annotator: "tester", includeReplaced: true)
        XCTAssertEqual(all.count, 3)
        XCTAssertEqual(all.filter { $0.replacedBy != nil }.map { $0.ranking.ranks ?? [] }, [[1, 2, 1]])
        XCTAssertEqual(try store.comparisons().count, 6, "3 pairs per fully ordered item of 3")
        XCTAssertTrue(rankings.allSatisfy { $0.ranking.guidelineVersion?.count == 16 })
    }

    /// A ranking whose write fails (here: the process's file-size limit is lowered to one byte
    /// after start-up, so SQLite cannot grow its log) stays on screen with the error; once the
    /// write can succeed again, Enter saves it. Nothing is stored twice or lost.
    func testFailedSaveKeepsTheAnswerAndEnterRetries() throws {
        try makeRun(prompts: ["first item", "second item"])
        let p = try label()
        XCTAssertTrue(p.waitFor("first item"), p.text)
        // glibc's prlimit(2) wrapper, which Swift's Glibc module does not import.
        typealias Prlimit = @convention(c) (pid_t, Int32, UnsafePointer<rlimit>?, UnsafeMutablePointer<rlimit>?) -> Int32
        let prlimit = unsafeBitCast(try XCTUnwrap(dlsym(nil, "prlimit")), to: Prlimit.self)
        #if os(Linux)
        let fileSizeResource = Int32(RLIMIT_FSIZE.rawValue)
        #else
        let fileSizeResource = RLIMIT_FSIZE
        #endif
        func setFileSizeLimit(_ bytes: rlim_t) {
            var lim = rlimit(rlim_cur: bytes, rlim_max: rlim_t.max)
            XCTAssertEqual(prlimit(p.pid, fileSizeResource, &lim, nil), 0, String(cString: strerror(errno)))
        }
        setFileSizeLimit(1)
        p.markOutput()
        p.send("213\r")
        XCTAssertTrue(p.waitFor("NOT SAVED"), p.text)
        let store = try RunStore(folder: URL(fileURLWithPath: runPath))
        XCTAssertEqual(try store.rankings(annotator: "tester").count, 0)
        p.markOutput()
        p.send("\r") // still failing: still kept
        XCTAssertTrue(p.waitFor("NOT SAVED"), p.text)
        XCTAssertFalse(p.waitFor("second item", timeout: 1), "the failed item stays on screen")
        XCTAssertEqual(try store.rankings(annotator: "tester").count, 0)

        setFileSizeLimit(rlim_t.max)
        p.markOutput()
        p.send("\r")
        XCTAssertTrue(p.waitFor("second item"), p.text)
        let saved = try store.rankings(annotator: "tester")
        XCTAssertEqual(saved.map { $0.ranking.ranks ?? [] }, [[2, 1, 3]], "saved once, as ranked before the failure")
        p.send("q")
        XCTAssertEqual(p.wait(), 0)
        try rlhf(["status", "--run", runPath, "--check"])
    }

    func testResizeRedrawsAndSignalsRestoreTheTerminal() throws {
        try makeRun(prompts: ["only item"])
        let p = try label()
        XCTAssertTrue(p.waitFor("only item"), p.text)
        XCTAssertTrue(p.text.contains("\u{1B}[?1049h"), "the alternate screen is used")
        p.markOutput()
        p.resize(columns: 120, rows: 30)
        // At 120 columns the long form of the key help fits.
        XCTAssertTrue(p.waitFor("u reopen last"), p.text)
        p.markOutput()
        p.kill(SIGTERM)
        XCTAssertEqual(p.wait(), 128 + SIGTERM)
        XCTAssertTrue(String(decoding: p.output, as: UTF8.self).hasSuffix("\u{1B}[0m\u{1B}[?25h\u{1B}[?1049l"), "the terminal is restored on SIGTERM")
    }

    func testSkipFlagAndSimulatedLabelers() throws {
        try makeRun(prompts: ["alpha", "beta", "gamma"], perPrompt: 4)
        let p = try label()
        XCTAssertTrue(p.waitFor("alpha"), p.text)
        p.send("s")
        XCTAssertTrue(p.waitFor("beta"))
        p.send("fnot english\r")
        XCTAssertTrue(p.waitFor("gamma"))
        p.send("\u{03}") // Ctrl-C quits cleanly
        XCTAssertEqual(p.wait(), 0)
        let store = try RunStore(folder: URL(fileURLWithPath: runPath))
        XCTAssertEqual(try store.rankings().map(\.ranking.status), [.skipped, .flagged])
        XCTAssertEqual(try store.rankings()[1].ranking.reason, "not english")

        let lex = Self.repo.appendingPathComponent("labels/lexicon").path
        let sim = try rlhf(["label", "--run", runPath, "--simulate", "lexicon", "--lexicon", lex, "--noise", "0.1", "--seed", "2"])
        XCTAssertTrue(sim.stdout.contains("sim-lexicon ranked 3 items"), sim.stdout)
        try rlhf(["label", "--run", runPath, "--simulate", "length", "--annotator", "len", "--target-length", "5"])
        let stats = try rlhf(["labels", "stats", "--run", runPath, "--json"])
        let s = try JSONSerialization.jsonObject(with: Data(stats.stdout.utf8)) as! [String: Any]
        XCTAssertEqual((s["annotators"] as! [[String: Any]]).map { $0["annotator"] as! String }, ["len", "sim-lexicon", "tester"])
        XCTAssertEqual(s["shared_items"] as? Int, 3)
        let trl = dir.appendingPathComponent("pairs.jsonl")
        let ex = try rlhf(["labels", "export", "--run", runPath, "--format", "trl", "-o", trl.path])
        XCTAssertTrue(ex.stdout.contains("wrote"), ex.stdout)
        let lines = try String(contentsOf: trl, encoding: .utf8).split(separator: "\n")
        XCTAssertEqual(lines.count, try store.comparisons().count)
        // Into a fresh run, all or nothing.
        try rlhf(["init", "--run", dir.appendingPathComponent("other").path, "--base", "random:S"])
        let bad = dir.appendingPathComponent("bad.jsonl")
        try (lines.prefix(3).joined(separator: "\n") + "\n{\"prompt\":\"x\",\"chosen\":\"y\"}\n").write(to: bad, atomically: true, encoding: .utf8)
        let refused = try rlhf(["labels", "import", bad.path, "--run", dir.appendingPathComponent("other").path], expect: 1)
        XCTAssertTrue(refused.stderr.contains("bad.jsonl:4: no \"rejected\" key"), refused.stderr)
        let other = try RunStore(folder: dir.appendingPathComponent("other"))
        XCTAssertEqual(try other.counts().rankings, 0)
        try rlhf(["labels", "import", trl.path, "--run", dir.appendingPathComponent("other").path])
        XCTAssertEqual(try other.comparisons().count, lines.count)
        // Errors.
        try rlhf(["label", "--run", runPath, "--simulate", "vibes"], expect: 2)
        try rlhf(["label", "--run", runPath, "--noise", "0.2"], expect: 2)
        let notty = try rlhf(["label", "--run", runPath], expect: 1)
        XCTAssertTrue(notty.stderr.contains("needs a terminal"), notty.stderr)
    }
}
