import Compare
import Foundation
import StageKit
import XCTest

@testable import RunStore

/// `rlhf compare --judge human` in a real pseudo-terminal: judging, undo, SIGKILL and resume,
/// the sides, hostile text, and the results in the command, `rlhf status`, the report and JSON.
final class JudgeCommandTests: ScratchFolderTestCase {
    var runPath: String { dir.appendingPathComponent("run").path }

    /// The settings `--a 2 --b 1 --judge human` gives (the policy against the base).
    static func humanConfig() throws -> CompareConfig {
        try CompareConfig.parse(GivenOptions(values: ["--a": "2", "--b": "1", "--judge": "human"]))
    }

    /// A run whose policy (#2) and base (#1) have "written" the given answers to eval prompts:
    /// stored as a finished human compare run with the settings `humanConfig` gives, which the
    /// command then reuses (the two models of `random:S` are the same weights, so sampling them
    /// would give the same text on both sides).
    func makeRun(_ items: [(prompt: String, policy: String, base: String)]) throws -> (RunStore, HumanComparison) {
        try rlhf(["init", "--run", runPath, "--base", "random:S"])
        let file = dir.appendingPathComponent("eval.txt")
        try items.map(\.prompt).joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["prompts", "add", file.path, "--run", runPath, "--split", "eval"])
        let store = try RunStore(folder: URL(fileURLWithPath: runPath))
        let config = try Self.humanConfig()
        let run = try store.beginStageRun(stage: "compare", config: config, seed: config.seed)
        let prompts = try store.prompts(split: .eval)
        for (model, texts) in [(Int64(2), items.map(\.policy)), (1, items.map(\.base))] {
            try store.addCompletions(
                zip(prompts, texts).map { p, text in
                    NewCompletion(
                        promptId: p.id, modelId: model, stageRunId: run, text: text, tokenIds: [], finishReason: "eos", logprobSum: nil,
                        sampling: "{}")
                })
        }
        try store.finishStageRun(run, status: .succeeded)
        return (store, try HumanComparison.load(store: store, stageRunId: run))
    }

    func judge(_ annotator: String, _ extra: [String] = [], columns: UInt16 = 80) throws -> PTYProcess {
        try PTYProcess(
            rlhfBinary, ["compare", "--run", runPath, "--a", "2", "--b", "1", "--judge", "human", "--annotator", annotator] + extra, columns: columns)
    }

    func testJudgeUndoKillRestartAndResults() throws {
        let (store, comparison) = try makeRun([
            ("first question", "policy answer one", "base answer one"),
            ("second question", "policy answer two", "base answer two"),
            ("third question", "\u{1B}]0;pwned\u{07}title \u{1B}[2J wiped", "carriage\rreturn \u{1B}[31mred"),
            ("fourth question", "policy answer four", "base answer four"),
        ])
        XCTAssertEqual(comparison.items.count, 4)
        // The key that prefers the policy's (first model's) completion on each item, for "ana".
        let sides = comparison.items.map { comparison.firstSide(annotator: "ana", item: $0) }
        func policyKey(_ i: Int) -> String { sides[i] == .a ? "a" : "b" }
        func baseKey(_ i: Int) -> String { sides[i] == .a ? "b" : "a" }

        let p1 = try judge("ana")
        XCTAssertTrue(p1.waitFor("first question"), p1.text)
        XCTAssertTrue(p1.waitFor("0/4 done"))
        XCTAssertTrue(p1.text.contains("policy answer one") && p1.text.contains("base answer one"))
        p1.markOutput()
        p1.send(policyKey(0)) // the policy wins item 1
        XCTAssertTrue(p1.waitFor("second question"), p1.text)
        p1.markOutput()
        p1.send("t") // a tie on item 2
        XCTAssertTrue(p1.waitFor("third question"), p1.text)
        XCTAssertTrue(p1.waitFor("saved: tie"))
        p1.markOutput()
        p1.send("u") // undo: item 2 again, with the verdict given
        XCTAssertTrue(p1.waitFor("second question"), p1.text)
        XCTAssertTrue(p1.waitFor("Your verdict was: a tie"), p1.text)
        p1.markOutput()
        p1.send(baseKey(1)) // judged again: the base wins item 2
        XCTAssertTrue(p1.waitFor("third question"), p1.text)
        XCTAssertTrue(p1.waitFor("changed:"), p1.text)
        // Hostile model text is shown escaped.
        XCTAssertTrue(p1.waitFor("\\e]0;pwned\\x07title \\e[2J wiped"), p1.text)
        XCTAssertTrue(p1.waitFor("carriage\\rreturn \\e[31mred"), p1.text)
        XCTAssertFalse(p1.text.contains("\u{1B}]0;pwned"), "an OSC sequence from model text reached the terminal")
        XCTAssertFalse(p1.text.contains("\u{07}"))
        XCTAssertFalse(p1.text.contains("\u{1B}[31mred"))
        p1.kill(SIGKILL) // mid-judgment: item 3 is on screen
        XCTAssertEqual(p1.wait(), 128 + SIGKILL)

        var mine = try store.judgments(annotator: "ana")
        XCTAssertEqual(mine.map(\.judgment.outcome), [.win, .loss], "both verdicts survive kill -9, the undone one changed")
        XCTAssertEqual(mine.map(\.judgment.promptId), comparison.items.prefix(2).map(\.promptId))
        XCTAssertEqual(mine.map(\.judgment.firstSide), Array(sides.prefix(2)), "the sides drawn for ana are stored")
        let all = try store.judgments(annotator: "ana", includeReplaced: true)
        XCTAssertEqual(all.count, 3)
        XCTAssertEqual(all.filter { $0.replacedBy != nil }.map(\.judgment.verdict), [.tie], "the undone verdict is kept, replaced")

        let p2 = try judge("ana")
        XCTAssertTrue(p2.waitFor("third question"), "the restart resumes at the first item not judged: \(p2.text)")
        XCTAssertTrue(p2.waitFor("2/4 done"))
        XCTAssertFalse(p2.text.contains("first question"))
        p2.markOutput()
        p2.send("s") // skip item 3
        XCTAssertTrue(p2.waitFor("fourth question"), p2.text)
        p2.markOutput()
        p2.send(baseKey(3))
        XCTAssertTrue(p2.waitFor("Every item is judged"), p2.text)
        p2.send("q")
        XCTAssertEqual(p2.wait(), 0)
        XCTAssertTrue(p2.text.contains("\u{1B}[?1049l"), "the alternate screen is left on exit")
        XCTAssertTrue(p2.text.contains("wins 1, losses 2, ties 0, skips 1"), p2.text)
        mine = try store.judgments(annotator: "ana")
        XCTAssertEqual(mine.map(\.judgment.outcome), [.win, .loss, .skip, .loss])
        XCTAssertEqual(mine.map(\.judgment.firstSide), sides)

        // A second annotator (with a name that is hostile on a terminal and in HTML) judges the same items.
        let bo = "bo<b>\u{1B}[31m"
        for (i, item) in comparison.items.enumerated() {
            let side = comparison.firstSide(annotator: bo, item: item)
            // bo: the policy wins items 1 and 2, a tie on 3, the base wins item 4.
            let verdict: JudgeVerdict = i == 2 ? .tie : (i < 2) == (side == .a) ? .a : .b
            try store.submitJudgment(
                NewJudgment(
                    stageRunId: comparison.stageRunId, promptId: item.promptId, modelId: 2, otherModelId: 1, completionId: item.completionId,
                    otherCompletionId: item.otherCompletionId, firstSide: side, verdict: verdict, annotator: bo, shownAt: 10, judgedAt: 11))
        }
        // Agreement on items 1, 2 and 4 (ana skipped 3): ana win, loss, loss; bo win, win, loss.
        // p_o = 2/3; p_e = (1/3)(2/3) + (2/3)(1/3) = 4/9; kappa = (2/3 - 4/9) / (5/9) = 0.4.
        let results = try rlhf(["compare", "--run", runPath, "--judge", "human", "--results", "--json"])
        let json = try XCTUnwrap(try JSONSerialization.jsonObject(with: Data(results.stdout.utf8)) as? [String: Any], results.stdout)
        let c = try XCTUnwrap((json["comparisons"] as? [[String: Any]])?.first)
        XCTAssertEqual(c["stage_run"] as? Int, Int(comparison.stageRunId))
        let overall = try XCTUnwrap(c["overall"] as? [String: Any])
        XCTAssertEqual(overall["wins"] as? Int, 3)
        XCTAssertEqual(overall["losses"] as? Int, 3)
        XCTAssertEqual(overall["ties"] as? Int, 1)
        XCTAssertEqual(overall["skips"] as? Int, 1)
        XCTAssertEqual(try XCTUnwrap(overall["win_rate"] as? Double), 3.5 / 7, accuracy: 1e-12)
        let ci = HeadToHead.wilson(successes: 3.5, trials: 7)
        XCTAssertEqual(try XCTUnwrap(overall["ci_low"] as? Double), ci.low, accuracy: 1e-12)
        let agreement = try XCTUnwrap((c["agreement"] as? [[String: Any]])?.first)
        XCTAssertEqual(agreement["items"] as? Int, 3)
        XCTAssertEqual(try XCTUnwrap(agreement["percent"] as? Double), 2.0 / 3, accuracy: 1e-12)
        XCTAssertEqual(try XCTUnwrap(agreement["kappa"] as? Double), 0.4, accuracy: 1e-12)
        XCTAssertEqual((c["annotators"] as? [[String: Any]])?.compactMap { $0["annotator"] as? String }, ["ana", bo])

        // The same figures in words, in rlhf status and its JSON, and in the report, escaped.
        let text = try rlhf(["compare", "--run", runPath, "--judge", "human", "--results"]).stdout
        XCTAssertTrue(text.contains("overall: wins 3, losses 3, ties 1, skips 1; win rate 50.0%"), text)
        XCTAssertTrue(text.contains("Cohen's kappa 0.400"), text)
        XCTAssertTrue(text.contains("ties/2"), "the definition is printed with the figures")
        let status = try rlhf(["status", "--run", runPath]).stdout
        XCTAssertTrue(status.contains("human judgments (compare run #\(comparison.stageRunId))"), status)
        XCTAssertTrue(status.contains("bo<b>\\e[31m"), status)
        XCTAssertFalse(status.contains("\u{1B}"), "an annotator's name cannot style the terminal")
        let statusJSON = try XCTUnwrap(
            try JSONSerialization.jsonObject(with: Data(try rlhf(["status", "--run", runPath, "--json"]).stdout.utf8)) as? [String: Any])
        XCTAssertEqual(((statusJSON["judgments"] as? [[String: Any]])?.first?["overall"] as? [String: Any])?["wins"] as? Int, 3)
        try rlhf(["report", "--run", runPath])
        let html = try String(contentsOfFile: dir.appendingPathComponent("run/report.html").path, encoding: .utf8)
        XCTAssertTrue(html.contains("<section id=\"judgments\">"), html)
        XCTAssertTrue(html.contains("bo&lt;b&gt;"), "the annotator's name is escaped in HTML")
        XCTAssertFalse(html.contains("bo<b>"))
        XCTAssertTrue(html.contains("<td>50.0%</td>"))

        // Judgments are comparisons: decided ones train the reward model with --with-judgments.
        let none = try rlhf(["train-reward", "--run", runPath, "--epochs", "1"], expect: 1)
        XCTAssertTrue(none.stderr.contains("no comparisons"), none.stderr)
        let trained = try rlhf(["train-reward", "--run", runPath, "--epochs", "1", "--with-judgments"])
        XCTAssertTrue(trained.stdout.contains("6 of these rankings are human judgments"), trained.stdout)
        XCTAssertEqual(try store.latestModel(role: .reward)?.id != nil, true)
    }

    /// With nothing stored, the command samples both models once and stores the items; a second
    /// session with the same settings reuses them.
    func testSamplesOnceAndReusesTheItems() throws {
        try rlhf(["init", "--run", runPath, "--base", "random:S"])
        let file = dir.appendingPathComponent("eval.txt")
        try "one\ntwo\nthree".write(to: file, atomically: true, encoding: .utf8)
        try rlhf(["prompts", "add", file.path, "--run", runPath, "--split", "eval"])
        let p1 = try judge("ana", ["--samples", "2", "--max-new-tokens", "6"], columns: 120)
        XCTAssertTrue(p1.waitFor("0/6 done"), p1.text)
        XCTAssertTrue(p1.waitFor("│"), "side by side at 120 columns")
        p1.send("a")
        XCTAssertTrue(p1.waitFor("1/6 done"), p1.text)
        p1.send("q")
        XCTAssertEqual(p1.wait(), 0)
        let store = try RunStore(folder: URL(fileURLWithPath: runPath))
        let runs = try store.stageRuns(stage: "compare")
        XCTAssertEqual(runs.count, 1)
        XCTAssertEqual(runs.first?.status, .succeeded)
        let completions = try store.completions(stageRunId: runs[0].id)
        XCTAssertEqual(completions.filter { $0.modelId == 2 }.count, 6)
        XCTAssertEqual(completions.filter { $0.modelId == 1 }.count, 6)
        XCTAssertEqual(try store.labelItems(split: .train).count, 0, "eval samples are not offered for ranking")

        let p2 = try judge("ana", ["--samples", "2", "--max-new-tokens", "6"])
        XCTAssertTrue(p2.waitFor("1/6 done"), p2.text)
        XCTAssertTrue(p2.text.contains("judging the completions of compare run #\(runs[0].id)"), p2.text)
        p2.send("q")
        XCTAssertEqual(p2.wait(), 0)
        XCTAssertEqual(try store.stageRuns(stage: "compare").count, 1, "the same settings reuse the stored items")
    }

    /// A verdict whose write fails (the process's file-size limit lowered to one byte after
    /// start-up) stays on screen with the error; once writes succeed again, the same key saves it
    /// once.
    func testFailedSaveKeepsTheItemAndTheKeyRetries() throws {
        let (store, _) = try makeRun([("first question", "p1", "b1"), ("second question", "p2", "b2")])
        let p = try judge("ana")
        XCTAssertTrue(p.waitFor("first question"), p.text)
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
        p.send("t")
        XCTAssertTrue(p.waitFor("NOT SAVED"), p.text)
        XCTAssertFalse(p.waitFor("second question", timeout: 1), "the item stays on screen")
        XCTAssertEqual(try store.judgments().count, 0)
        setFileSizeLimit(rlim_t.max)
        p.markOutput()
        p.send("t")
        XCTAssertTrue(p.waitFor("second question"), p.text)
        XCTAssertEqual(try store.judgments().map(\.judgment.verdict), [.tie], "saved once")
        p.send("q")
        XCTAssertEqual(p.wait(), 0)
        try rlhf(["status", "--run", runPath, "--check"])
    }

    func testUsageAndErrors() throws {
        try rlhf(["init", "--run", runPath, "--base", "random:S"])
        let noTerminal = try rlhf(["compare", "--run", runPath, "--a", "2", "--b", "1", "--judge", "human"], expect: 1)
        XCTAssertTrue(noTerminal.stderr.contains("needs a terminal"), noTerminal.stderr)
        XCTAssertEqual(noTerminal.stderr.split(separator: "\n").count, 1, noTerminal.stderr)
        for bad in [["--annotator", "x"], ["--results"]] {
            let r = try rlhf(["compare", "--run", runPath, "--a", "2", "--b", "1", "--judge", "length"] + bad, expect: 2)
            XCTAssertTrue(r.stderr.contains("only with --judge human") || r.stderr.contains("add --judge human"), r.stderr)
        }
        let empty = try rlhf(["compare", "--run", runPath, "--judge", "human", "--results"])
        XCTAssertTrue(empty.stdout.contains("no human judgments yet"), empty.stdout)
        let help = try rlhf(["compare", "--help"])
        for key in ["--judge human", "--annotator", "--results", "A is better", "Wilson", "kappa"] {
            XCTAssertTrue(help.stdout.contains(key), key)
        }
        XCTAssertTrue(try rlhf(["train-reward", "--help"]).stdout.contains("--with-judgments"))
    }
}
