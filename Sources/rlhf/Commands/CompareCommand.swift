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

        \(CompareConfig.optionsHelp(column: 24, then: [("--reward ID", ["the reward model for --judge reward [the latest]"]),
                                                       ("--lexicon DIR", ["the lexicon for --judge lexicon [labels/lexicon]"]),
                                                       ("--json", ["print the figures as one JSON object"])]))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<CompareConfig>(args, options: ["--run", "--reward", "--lexicon"], flags: ["--json"])
        let (a, o) = (parsed.arguments, parsed.config)
        let store = try openRun(a)
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
}
