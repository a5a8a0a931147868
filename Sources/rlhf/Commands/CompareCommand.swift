import Compare
import Foundation
import Labeling
import RunStore
import StageKit
import TransformerCore

/// `rlhf compare`: two policies of a run head to head on its eval prompts.
enum CompareCommand: Command {
    static let name = "compare"
    static let summary = "Compare two policies head to head on the eval prompts"
    static let help = """
        Usage: rlhf compare [--run NAME] --a ID --b ID [--judge reward|lexicon|length] [options]
               rlhf compare [--run NAME] --a ID --b ID --judge human [--annotator NAME] [options]
               rlhf compare [--run NAME] --judge human --results [--a ID --b ID] [--json]

        Both models sample every eval prompt --samples times, with the same settings and the same
        seed; the i-th completion of A meets the i-th completion of B on the same prompt, and the
        judge scores both:
          reward   the run's latest reward model (or --reward ID), normalised as registered
          lexicon  the lexicon labeler's score (labels/lexicon, or --lexicon DIR): positive words
                   minus negative words
          length   the longer completion wins (a check for length bias)
        Prints wins, losses and ties of A, how often A is preferred where the judge prefers one, with
        a 95% Wilson interval, and each model's mean score. The comparison is recorded as a stage run
        (stage compare) with its figures as metrics. Model ids are those of 'rlhf status'.

        --judge human: you judge, blind. Both models sample the eval prompts once (one completion
        each per prompt unless --samples says more; a later session with the same settings reuses
        them from the run database), and each item shows the prompt with the two completions as A
        and B. Which model is on which side is drawn for each item and annotator (seeded by --seed
        and stored with the verdict). Every verdict is saved at once in its own transaction: quit
        or even kill -9 loses nothing given, and the next session resumes at the first item you
        have not judged. Model text is shown with control characters and escape sequences made
        visible, never executed. Keys:
        \(JudgeSession.keyHelp.map { "  " + $0.0.padding(toLength: 13, withPad: " ", startingAt: 0) + $0.1 }.joined(separator: "\n"))
        At the end, and with --results (without judging), it prints for the first model (--a) the
        wins, losses, ties and skips, the win rate (wins + ties/2) / (wins + losses + ties) with its
        95% Wilson score interval, per annotator and overall, and for each pair of annotators the
        percent agreement and Cohen's kappa over the items both judged without skipping.

        \(CompareConfig.optionsHelp(column: 24, then: [("--reward ID", ["the reward model for --judge reward [the latest]"]),
                                                       ("--lexicon DIR", ["the lexicon for --judge lexicon [labels/lexicon]"]),
                                                       ("--annotator NAME", ["who judges, for --judge human [$USER]"]),
                                                       ("--results", ["with --judge human: print the results so far and judge nothing"]),
                                                       ("--json", ["print the figures as one JSON object"])]))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<CompareConfig>(
            args, options: ["--run", "--reward", "--lexicon", "--annotator"], flags: ["--json", "--results"])
        let (a, o) = (parsed.arguments, parsed.config)
        if o.judge != "human" {
            for name in ["--annotator", "--results"] where a.has(name) { throw UsageError("\(name) applies only with --judge human") }
        }
        let store = try openRun(a)
        if o.judge == "human" { return try human(a, o, store: store) }
        let judge: Judge
        switch o.judge {
        case "reward":
            let rec: ModelRecord
            if let s = a.string("--reward") {
                guard let v = Int64(s) else { throw UsageError("--reward expects a model id, got '\(s)'") }
                guard let m = try store.model(id: v) else { throw RuntimeError("the run has no model #\(v)") }
                rec = m
            } else {
                guard let m = try store.latestModel(role: .reward) else {
                    throw RuntimeError("the run has no reward model; train one with 'rlhf train-reward', or use --judge lexicon or length")
                }
                rec = m
            }
            let rm = try store.loadModel(rec)
            guard rm.model.hasScalarHead else { throw RuntimeError("model #\(rec.id) is not a reward model") }
            judge = .reward(rm)
        case "lexicon":
            let lexicon = try Lexicon(folder: URL(fileURLWithPath: a.string("--lexicon") ?? "labels/lexicon"))
            judge = .text(name: "lexicon") { Double(lexicon.score($0)) }
        default:
            judge = .length
        }
        var bar: ProgressBar?, label = ""
        let r = try CompareStage.run(store: store, options: o, judge: judge) { phase, done, total in
            if phase != label { bar?.finish(); bar = ProgressBar(phase, total: total, unit: "completions"); label = phase }
            bar!.update(done)
        }
        bar?.finish()
        let t = r.tally, ci = t.interval
        if a.flag("--json") {
            print(
                jsonLine([
                    ("a", "\(o.a)"), ("b", "\(o.b)"), ("judge", JSONText.quote(o.judge)), ("prompts", "\(r.prompts)"),
                    ("pairs", "\(t.pairs)"), ("wins", "\(t.wins)"), ("losses", "\(t.losses)"), ("ties", "\(t.ties)"),
                    ("preferred_a", jsonNumber(t.preferred)), ("ci_low", jsonNumber(ci.low)), ("ci_high", jsonNumber(ci.high)),
                    ("score_a", jsonNumber(r.meanA)), ("score_b", jsonNumber(r.meanB)), ("stage_run", "\(r.stageRunId)"),
                ]))
            return
        }
        print("#\(o.a) (A) against #\(o.b) (B), judged by \(judge.name), on \(r.prompts) \(o.split) prompts × \(o.perPrompt) samples")
        print("  A wins \(t.wins), loses \(t.losses), ties \(t.ties)")
        if t.wins + t.losses > 0 {
            print(
                String(
                    format: "  A preferred in %.1f%% of decided pairs (95%% interval %.1f%%–%.1f%%)", t.preferred * 100, ci.low * 100, ci.high * 100))
        }
        print(String(format: "  mean %@ score: A %.3f, B %.3f", judge.name, r.meanA, r.meanB))
    }

    /// `--judge human`: the judging screen, then the results; with `--results`, only the results.
    static func human(_ a: Arguments, _ o: CompareConfig, store: RunStore) throws {
        if a.flag("--results") {
            var all = try JudgmentSummary.all(store)
            if a.has("--a") || a.has("--b") {
                all = all.filter { (!a.has("--a") || $0.modelId == o.a) && (!a.has("--b") || $0.otherModelId == o.b) }
            }
            if a.flag("--json") {
                print(jsonLine([("comparisons", "[" + all.map(JudgmentSummary.json).joined(separator: ",") + "]")]))
                return
            }
            guard !all.isEmpty else {
                print("no human judgments yet; judge with 'rlhf compare --judge human --a ID --b ID'")
                return
            }
            for r in all { JudgmentSummary.lines(r).forEach { print($0) } }
            print(JudgmentSummary.legend)
            return
        }
        let annotator = a.string("--annotator") ?? ProcessInfo.processInfo.environment["USER"] ?? "annotator"
        guard !annotator.isEmpty else { throw UsageError("--annotator is empty") }
        guard isatty(0) == 1, isatty(1) == 1 else {
            throw RuntimeError("judging needs a terminal (stdin and stdout); to see the results without judging, add --results")
        }
        var bar: ProgressBar?, label = ""
        let (comparison, sampled) = try HumanComparison.prepare(store: store, options: o) { phase, done, total in
            if phase != label { bar?.finish(); bar = ProgressBar(phase, total: total, unit: "completions"); label = phase }
            bar!.update(done)
        }
        bar?.finish()
        guard !comparison.items.isEmpty else { throw RuntimeError("compare run #\(comparison.stageRunId) has no items to judge") }
        if !sampled { printError("judging the completions of compare run #\(comparison.stageRunId) (stored; same settings)") }
        let app = JudgeApp(store: store, comparison: comparison, annotator: annotator, runName: a.string("--run") ?? "default")
        let terminal = try Terminal()
        let n: Int
        do { n = try app.run(terminal: terminal) } catch { terminal.restore(); throw error }
        terminal.restore()
        let r = try JudgmentResults.of(comparison, store: store)
        if a.flag("--json") { print(JudgmentSummary.json(r)); return }
        print("judged \(n) item\(n == 1 ? "" : "s") this session; every verdict is saved in \(store.folder.path)")
        JudgmentSummary.lines(r).forEach { print($0) }
        print(JudgmentSummary.legend)
    }
}
