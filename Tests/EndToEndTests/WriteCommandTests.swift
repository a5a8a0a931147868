import Foundation
import XCTest

@testable import RunStore

/// Writing demonstrations in `rlhf label` through a real pseudo-terminal, and their files
/// through `rlhf labels export|import`.
extension LabelCommandTests {
    func store() throws -> RunStore { try RunStore(folder: URL(fileURLWithPath: runPath)) }

    /// Write one answer from scratch, start one from a completion, kill -9 mid-draft: the
    /// submitted answer is kept, the draft is offered back on the next start and submits.
    func testWriteSubmitThenKillMidDraftAndResumeIt() throws {
        try makeRun(prompts: ["first item", "second item", "third item"])
        let p1 = try label(["--write"])
        XCTAssertTrue(p1.waitFor("first item"), p1.text)
        XCTAssertTrue(p1.waitFor("0/3 written"))
        p1.markOutput()
        p1.send("w")
        XCTAssertTrue(p1.waitFor("from scratch"), p1.text)
        p1.send("Helo")
        p1.send("\u{1B}[Dl\u{1B}[C\rwörld 😀  \r") // left, l, right, newline…; trailing spaces are dropped
        XCTAssertTrue(p1.waitFor("wörld"), p1.text)
        p1.markOutput()
        p1.send("\u{13}") // Ctrl-S
        XCTAssertTrue(p1.waitFor("second item"), p1.text)
        XCTAssertTrue(p1.waitFor("1/3 written"))
        let store = try store()
        let first = try store.demonstrations()
        XCTAssertEqual(first.map(\.demonstration.text), ["Hello\nwörld 😀"])
        XCTAssertEqual(first[0].demonstration.annotator, "tester")
        XCTAssertEqual(first[0].demonstration.source, "human")
        XCTAssertNil(first[0].demonstration.fromCompletionId)
        XCTAssertEqual(first[0].demonstration.guidelineVersion?.count, 16)
        XCTAssertEqual(try store.prompt(id: first[0].demonstration.promptId)?.text, "first item")
        XCTAssertLessThanOrEqual(first[0].demonstration.startedAt, first[0].demonstration.submittedAt)

        // Correct completion 2 of the second item, and die mid-draft.
        let second = try store.prompts().first { $0.text == "second item" }!
        let sample = try store.completions(promptId: second.id)[1]
        p1.markOutput()
        p1.send("c2")
        XCTAssertTrue(p1.waitFor("starting from completion [2]"), p1.text)
        p1.markOutput()
        p1.send("\u{1B}[F FIXED") // End, then type
        XCTAssertTrue(p1.waitFor("draft saved"), "a pause in the typing saves the draft: \(p1.text)")
        p1.kill(SIGKILL)
        XCTAssertEqual(p1.wait(), 128 + SIGKILL)
        XCTAssertEqual(try store.demonstrations().count, 1, "the submitted answer survives kill -9")
        let drafts = try store.drafts(annotator: "tester")
        XCTAssertEqual(drafts.map(\.text), [sample.text + " FIXED"])
        XCTAssertEqual(drafts.first?.fromCompletionId, sample.id)

        // The next start offers the draft back.
        let p2 = try label(["--write"])
        XCTAssertTrue(p2.waitFor("was not submitted"), p2.text)
        XCTAssertTrue(p2.waitFor("FIXED"))
        p2.markOutput()
        p2.send("r")
        XCTAssertTrue(p2.waitFor("your draft"), p2.text)
        p2.send("!\u{13}")
        XCTAssertTrue(p2.waitFor("third item"), p2.text)
        let all = try store.demonstrations()
        XCTAssertEqual(all.map(\.demonstration.text), ["Hello\nwörld 😀", sample.text + " FIXED!"])
        XCTAssertEqual(all[1].demonstration.fromCompletionId, sample.id, "the completion it started from is kept")
        XCTAssertEqual(all[1].demonstration.startedAt, drafts[0].startedAt, "started when the draft was begun")
        XCTAssertEqual(try store.drafts(annotator: "tester").count, 0, "a submit drops the draft")
        p2.markOutput()
        p2.send("s") // pass over the third item
        XCTAssertTrue(p2.waitFor("Every prompt has an answer"), p2.text)
        p2.send("q")
        XCTAssertEqual(p2.wait(), 0)
        XCTAssertTrue(p2.text.contains("wrote 1 answer this session"), p2.text)
        XCTAssertEqual(try store.promptsWithoutDemonstration().map(\.text), ["third item"])
        try rlhf(["status", "--run", runPath, "--check"])
    }

    /// On the ranking screen, w writes the item's answer and comes back to rank it; Ctrl-X and e
    /// run $VISUAL on the answer as git commit does. A draft can be dropped with Esc, d.
    func testWriteFromTheRankingScreenAndInTheEditor() throws {
        try makeRun(prompts: ["alpha", "beta"])
        let seen = dir.appendingPathComponent("seen.txt")
        let script = dir.appendingPathComponent("editor.sh")
        try "#!/bin/sh\ncp \"$1\" '\(seen.path)'\nprintf ' and from the editor\\n' >> \"$1\"\n".write(to: script, atomically: true, encoding: .utf8)
        XCTAssertEqual(chmod(script.path, 0o755), 0)
        setenv("VISUAL", script.path, 1)
        defer { unsetenv("VISUAL") }

        let p = try label()
        XCTAssertTrue(p.waitFor("alpha"), p.text)
        p.markOutput()
        p.send("w")
        XCTAssertTrue(p.waitFor("from scratch"), p.text)
        p.send("Draft")
        XCTAssertTrue(p.waitFor("Draft"))
        p.markOutput()
        p.send("\u{18}") // Ctrl-X
        XCTAssertTrue(p.waitFor("back from the editor"), p.text)
        XCTAssertTrue(p.waitFor("Draft and from the editor"))
        XCTAssertEqual(try String(contentsOf: seen, encoding: .utf8), "Draft", "the editor gets the answer so far")
        p.markOutput()
        p.send("\u{13}")
        XCTAssertTrue(p.waitFor("now rank the completions"), p.text)
        p.markOutput()
        p.send("21\r")
        XCTAssertTrue(p.waitFor("beta"), p.text)

        // Esc, d drops a draft.
        p.markOutput()
        p.send("w")
        XCTAssertTrue(p.waitFor("from scratch"), p.text)
        p.send("gone soon")
        XCTAssertTrue(p.waitFor("draft saved"), p.text)
        XCTAssertEqual(try store().drafts(annotator: "tester").map(\.text), ["gone soon"])
        p.markOutput()
        p.send("\u{1B}")
        XCTAssertTrue(p.waitFor("Leave this answer?"), p.text)
        p.send("d")
        XCTAssertTrue(p.waitFor("draft dropped"), p.text)
        XCTAssertEqual(try store().drafts(annotator: "tester").count, 0)

        // e opens the editor at once.
        p.markOutput()
        p.send("e")
        XCTAssertTrue(p.waitFor("back from the editor"), p.text)
        p.send("\u{13}")
        XCTAssertTrue(p.waitFor("now rank the completions"), p.text)
        // w again opens the submitted answer; a submit replaces it.
        p.markOutput()
        p.send("w")
        XCTAssertTrue(p.waitFor("your submitted answer"), p.text)
        p.send("!\u{13}")
        XCTAssertTrue(p.waitFor("now rank the completions"), p.text)
        p.send("q")
        XCTAssertEqual(p.wait(), 0)
        XCTAssertTrue(p.text.contains("labeled 1 item and wrote 2 answers this session"), p.text)

        let s = try store()
        XCTAssertEqual(s.schemaVersion, Schema.currentVersion)
        XCTAssertEqual(try s.demonstrations().map(\.demonstration.text), ["Draft and from the editor", " and from the editor!"])
        let history = try s.demonstrations(includeReplaced: true)
        XCTAssertEqual(history.map(\.demonstration.text), ["Draft and from the editor", " and from the editor", " and from the editor!"])
        XCTAssertEqual(history[1].replacedBy, history[2].id, "the earlier answer is kept, marked replaced")
        XCTAssertEqual(try s.rankings(annotator: "tester").map { $0.ranking.ranks ?? [] }, [[2, 1, 3]])
    }

    /// Escape sequences, C1 controls and bidirectional overrides in a prompt (this one without
    /// samples) and in the typed answer reach the terminal only as visible escapes.
    func testHostileTextStaysEscapedWhileWriting() throws {
        try makeRun(prompts: ["plain"])
        _ = try store().addPrompts([NewPrompt(text: "evil \u{1B}]0;pwned\u{07} \u{1B}[2J prompt \u{202E}rev")], split: .train, source: nil)
        let p = try label(["--write"])
        XCTAssertTrue(p.waitFor("plain"), p.text)
        p.markOutput()
        p.send("s")
        XCTAssertTrue(p.waitFor("\\e]0;pwned\\x07 \\e[2J prompt \\u{202E}rev"), p.text)
        XCTAssertTrue(p.waitFor("no samples for this prompt"))
        p.markOutput()
        p.send("w")
        XCTAssertTrue(p.waitFor("from scratch"), p.text)
        p.send("typed \u{9B}6n and \u{202E}x " + String(repeating: "long ", count: 40))
        XCTAssertTrue(p.waitFor("typed \\u{9B}6n and \\u{202E}x long"), p.text)
        p.send("\u{13}")
        XCTAssertTrue(p.waitFor("Every prompt has an answer"), p.text)
        p.send("q")
        XCTAssertEqual(p.wait(), 0)
        for raw in ["\u{1B}]0;pwned", "\u{07}", "\u{1B}[2J prompt", "\u{9B}", "\u{202E}"] {
            XCTAssertFalse(p.text.contains(raw), "\(raw.debugDescription) reached the terminal")
        }
        let d = try store().demonstrations()
        XCTAssertEqual(d.count, 1)
        XCTAssertTrue(d[0].demonstration.text.hasPrefix("typed \u{9B}6n and \u{202E}x long"), "the answer is stored as typed")
    }

    /// `labels export --format sft|sft-conversational` and `labels import` through the binary:
    /// export, import into a fresh run, export again gives the same file; a malformed line
    /// rejects the whole file with its line number.
    func testSFTExportAndImportRoundTrip() throws {
        try makeRun(prompts: ["one", "two"])
        let s = try store()
        for (i, p) in try s.prompts().enumerated() {
            try s.submitDemonstration(
                NewDemonstration(
                    promptId: p.id, text: "answer \(i)\nwith \"quotes\"", annotator: "ana", guidelineVersion: "abc", startedAt: 1, submittedAt: 2))
        }
        let a = dir.appendingPathComponent("a.jsonl"), b = dir.appendingPathComponent("b.jsonl")
        XCTAssertTrue(try rlhf(["labels", "export", "--run", runPath, "--format", "sft", "-o", a.path]).stdout.contains("wrote 2 demonstrations"))
        try rlhf(["labels", "export", "--run", runPath, "--format", "sft-conversational", "-o", b.path])
        let aText = try String(contentsOf: a, encoding: .utf8), bText = try String(contentsOf: b, encoding: .utf8)
        XCTAssertTrue(aText.contains("\"completion\":\"answer 0\\nwith \\\"quotes\\\"<|endoftext|>\""), aText)
        XCTAssertTrue(bText.hasPrefix("{\"messages\":[{\"role\":\"user\",\"content\":\"one\"},{\"role\":\"assistant\""), bText)

        let other = dir.appendingPathComponent("other").path
        try rlhf(["init", "--run", other, "--base", "random:S"])
        let bad = dir.appendingPathComponent("bad.jsonl")
        let aLines = aText.split(separator: "\n")
        try (aLines[0] + "\n" + aLines[1] + "\n{\"prompt\":\"x\"}\n").write(to: bad, atomically: true, encoding: .utf8)
        let refused = try rlhf(["labels", "import", bad.path, "--run", other], expect: 1)
        XCTAssertTrue(refused.stderr.contains("bad.jsonl:3: no \"completion\" key"), refused.stderr)
        let otherStore = try RunStore(folder: URL(fileURLWithPath: other))
        XCTAssertEqual(try otherStore.demonstrations().count, 0, "nothing is imported from a file with a bad line")
        XCTAssertEqual(try otherStore.prompts().count, 0)

        XCTAssertTrue(try rlhf(["labels", "import", a.path, "--run", other]).stdout.contains("imported 2 demonstrations (2 new prompts)"))
        let again = try rlhf(["labels", "export", "--run", other, "--format", "sft", "-o", "-"]).stdout
        XCTAssertEqual(again, aText)
        let third = dir.appendingPathComponent("third").path
        try rlhf(["init", "--run", third, "--base", "random:S"])
        try rlhf(["labels", "import", b.path, "--run", third, "--annotator", "zoe"])
        let conv = try rlhf(["labels", "export", "--run", third, "--format", "sft-conversational", "-o", "-"]).stdout
        XCTAssertEqual(conv, bText, "the origin keeps the first annotator; the rows take --annotator")
        XCTAssertEqual(try RunStore(folder: URL(fileURLWithPath: third)).demonstrations().map(\.demonstration.annotator), ["zoe", "zoe"])
        try rlhf(["label", "--run", runPath, "--write", "--simulate", "lexicon"], expect: 2)
    }
}
