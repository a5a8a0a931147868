import Foundation
import Labeling
import RunStore
import StageKit
import TransformerCore

/// `rlhf label`: rank completions by keyboard, or with a simulated labeler.
enum LabelCommand: Command {
    static let name = "label"
    static let summary = "Rank completions and write ideal answers in the terminal (or simulate a labeler)"
    static var help: String {
        """
        Usage: rlhf label [--run NAME] [--annotator NAME] [--guidelines FILE] [--order random|fixed]
               rlhf label --write [--run NAME] [--annotator NAME] [--guidelines FILE]
               rlhf label --simulate lexicon|length [--noise P] [--seed S] [--annotator NAME]
                          [--lexicon DIR] [--target-length N] [--run NAME]

        A full-screen labeling tool. Each item is a train prompt with the completions one model
        wrote for it (2 to 9), numbered in an order shuffled for each item and annotator
        (--order fixed shows them in generation order). Press the number of the best completion,
        then the next best, and so on; Enter submits. Every submit, skip or flag is saved at once
        in its own transaction, so quitting or even kill -9 loses nothing submitted. Items you
        already labeled are not shown again; other annotators may label the same items. Model text
        is shown with control characters and escape sequences made visible, never executed.

        Keys:
        \(LabelScreen.keyHelp.map { "  " + $0.0.padding(toLength: 13, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n"))
          Ctrl-S, Ctrl-Q and Ctrl-Z are bound to nothing.

        Writing demonstrations: w, c N or e on any item opens its prompt's answer for writing,
        empty, from your unsubmitted draft or submitted answer, or from completion N to correct it.
        The answer is a demonstration for 'rlhf sft': submitted in one transaction with the prompt,
        the text, the annotator, the completion it started from, the start and submit times and the
        guideline version; it replaces your earlier answer to the prompt (kept in the history).
        While you write, the draft is saved after each short pause and every few keys; after a
        crash or kill -9 the next start offers it back (r resume, d discard, l later). --write
        shows the prompts (train first, then eval) that have no demonstration yet, human or
        imported, with their samples when there are some (Enter writes, s passes over a prompt).
        In the writing screen:
        \(WriteScreen.keyHelp.map { "  " + $0.0.padding(toLength: 15, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n"))

        Options:
          --run NAME          the run (default: default)
          --annotator NAME    who is labeling (default: $USER; with --simulate: sim-RULE)
          --guidelines FILE   shown by g, and its hash stored with each label
                              (default: labels/guidelines.md)
          --order O           random (default) or fixed order of completions on screen
          --write             show the prompts without a demonstration, to write answers

        Simulated labelers rank every item the annotator has not labeled, through the same storage:
          --simulate lexicon  more positive and fewer negative words (labels/lexicon/) is better
          --simulate length   closer to --target-length words (default 30) is better
          --noise P           swap each pair of adjacent places with probability P (default 0)
          --seed S            seed for the noise (default 0)
          --lexicon DIR       word lists positive.txt and negative.txt (default: labels/lexicon)
        """
    }

    static func run(_ args: [String]) throws {
        let a = try Arguments(
            args,
            options: [
                "--run", "--annotator", "--guidelines", "--order", "--simulate", "--noise", "--seed",
                "--lexicon", "--target-length",
            ], flags: ["--write"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let orderName = a.string("--order") ?? "random"
        guard let order = DisplayOrder(rawValue: orderName) else { throw UsageError("--order must be random or fixed, got '\(orderName)'") }
        let guidelinesURL = URL(fileURLWithPath: a.string("--guidelines") ?? "labels/guidelines.md")
        if let rule = a.string("--simulate") {
            if a.flag("--write") { throw UsageError("--write and --simulate do not go together: simulated labelers rank, people write") }
            try simulate(a, ruleName: rule, order: order, guidelinesURL: guidelinesURL)
            return
        }
        for o in ["--noise", "--seed", "--lexicon", "--target-length"] where a.string(o) != nil {
            throw UsageError("\(o) only applies with --simulate")
        }
        let annotator = a.string("--annotator") ?? ProcessInfo.processInfo.environment["USER"] ?? "annotator"
        guard !annotator.isEmpty else { throw UsageError("--annotator is empty") }
        let guidelines = try Guidelines(url: guidelinesURL, required: a.string("--guidelines") != nil)
        let store = try openRun(a)
        let write = a.flag("--write")
        let app = try LabelApp(
            store: store, annotator: annotator, order: order, guidelines: guidelines, runName: a.string("--run") ?? "default", writeOnly: write)
        guard !app.queueIsEmpty else {
            if write { throw RuntimeError("nothing to write for: the run has no prompts; add some with 'rlhf prompts add FILE'") }
            throw RuntimeError(
                "nothing to label: the run has no train prompt with two or more completions; run 'rlhf generate' first, or 'rlhf label --write' to write answers"
            )
        }
        let terminal = try Terminal()
        let n: Int
        do { n = try app.run(terminal: terminal) } catch { terminal.restore(); throw error }
        terminal.restore()
        if write {
            print("wrote \(n) answer\(n == 1 ? "" : "s") this session; everything submitted is saved in \(store.folder.path)")
        } else {
            let w = app.written > 0 ? " and wrote \(app.written) answer\(app.written == 1 ? "" : "s")" : ""
            print("labeled \(n) item\(n == 1 ? "" : "s")\(w) this session; everything submitted is saved in \(store.folder.path)")
        }
    }

    static func simulate(_ a: Arguments, ruleName: String, order: DisplayOrder, guidelinesURL: URL) throws {
        let rule: SimulationRule
        switch ruleName {
        case "lexicon": rule = .lexicon(try Lexicon(folder: URL(fileURLWithPath: a.string("--lexicon") ?? "labels/lexicon")))
        case "length": rule = .length(target: try a.int("--target-length", default: 30, range: 1...100_000)!)
        default: throw UsageError("--simulate must be lexicon or length, got '\(ruleName)'")
        }
        var noise = 0.0
        if let s = a.string("--noise") {
            guard let p = Double(s), p >= 0, p <= 1 else { throw UsageError("--noise expects a probability in [0, 1], got '\(s)'") }
            noise = p
        }
        let seed = UInt64(try a.int("--seed", default: 0, range: 0...Int.max)!)
        let annotator = a.string("--annotator") ?? "sim-\(rule.name)"
        let store = try openRun(a)
        let guidelines = try Guidelines(url: guidelinesURL, required: a.string("--guidelines") != nil)
        let run = try store.beginStageRun(
            stage: "label",
            config: jsonLine([
                ("simulate", JSONText.quote(rule.name)), ("noise", "\(noise)"),
                ("seed", "\(seed)"), ("annotator", JSONText.quote(annotator)),
                ("order", JSONText.quote(order.rawValue)),
            ]), seed: Int64(seed))
        let progress = LazyProgressBar("label", unit: "items")
        try store.failingStageRun(run) {
            let n = try SimulatedLabeler.run(
                store: store, rule: rule, noise: noise, seed: seed, annotator: annotator, order: order,
                guidelinesVersion: guidelines.version, progress: { progress.update($0, of: $1) })
            progress.finish()
            try store.finishStageRun(run, status: .succeeded)
            print("\(annotator) ranked \(n) item\(n == 1 ? "" : "s") by the \(rule.name) rule (noise \(noise))")
        }
    }
}
