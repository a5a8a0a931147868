import Compare
import Curves
import Foundation
import RunStore
import TransformerCore

/// The results of human judging as `rlhf compare --judge human`, `rlhf status` and `--json`
/// show them.
enum JudgmentSummary {
    static func percent(_ x: Double) -> String { x.isFinite ? String(format: "%.1f%%", x * 100) : "—" }

    /// One tally in words: "wins 3, losses 1, ties 1, skips 0; win rate 70.0% (95% interval 30.1%–93.2%)".
    static func tallyText(_ t: JudgeTally) -> String {
        let ci = t.interval
        return "wins \(t.wins), losses \(t.losses), ties \(t.ties), skips \(t.skips); "
            + (t.judged > 0 ? "win rate \(percent(t.winRate)) (95% interval \(percent(ci.low))–\(percent(ci.high)))" : "nothing judged")
    }

    /// Lines for a terminal, indented by `indent`; annotator names escaped.
    static func lines(_ r: JudgmentResults, indent: String = "") -> [String] {
        func name(_ s: String) -> String { TerminalSafe.escape(s, keepNewlines: false) }
        var out = [
            "\(indent)human judgments (compare run #\(r.stageRunId)): model #\(r.modelId) against #\(r.otherModelId), \(r.judgedItems) of \(r.items) items judged",
            "\(indent)  overall: " + tallyText(r.overall),
        ]
        if r.annotators.count > 1 { out += r.annotators.map { "\(indent)  \(name($0.name)): " + tallyText($0.tally) } }
        for g in r.agreements {
            out.append(
                "\(indent)  agreement \(name(g.annotators.0)) & \(name(g.annotators.1)): \(g.items) item\(g.items == 1 ? "" : "s") both judged, "
                    + "\(percent(g.percent)) agree, Cohen's kappa \(g.kappa.isFinite ? String(format: "%.3f", g.kappa) : "undefined")")
        }
        return out
    }

    /// What the figures mean, printed under them.
    static let legend = """
          (the first model's wins, losses and ties; win rate = (wins + ties/2) / (wins + losses + ties),
           a tie counting half and skips left out, with its 95% Wilson score interval; agreement and
           Cohen's kappa over the items both annotators judged without skipping, on three verdicts:
           first better, second better, tie)
        """

    static func tallyJSON(_ t: JudgeTally) -> [(String, String)] {
        let ci = t.interval
        return [
            ("judged", "\(t.judged)"), ("wins", "\(t.wins)"), ("losses", "\(t.losses)"), ("ties", "\(t.ties)"), ("skips", "\(t.skips)"),
            ("win_rate", jsonNumber(t.winRate)), ("ci_low", jsonNumber(ci.low)), ("ci_high", jsonNumber(ci.high)),
        ]
    }

    /// One comparison as a JSON object.
    static func json(_ r: JudgmentResults) -> String {
        jsonLine([
            ("stage_run", "\(r.stageRunId)"), ("a", "\(r.modelId)"), ("b", "\(r.otherModelId)"), ("items", "\(r.items)"),
            ("judged_items", "\(r.judgedItems)"), ("overall", jsonLine(tallyJSON(r.overall))),
            (
                "annotators",
                "[" + r.annotators.map { jsonLine([("annotator", JSONText.quote($0.name))] + tallyJSON($0.tally)) }.joined(separator: ",") + "]"
            ),
            (
                "agreement",
                "["
                    + r.agreements.map {
                        jsonLine([
                            ("annotators", "[\(JSONText.quote($0.annotators.0)),\(JSONText.quote($0.annotators.1))]"), ("items", "\($0.items)"),
                            ("percent", jsonNumber($0.percent)), ("kappa", jsonNumber($0.kappa)),
                        ])
                    }.joined(separator: ",") + "]"
            ),
        ])
    }

    /// The results of every human comparison of the run that holds judgments, newest first.
    static func all(_ store: RunStore) throws -> [JudgmentResults] {
        try HumanComparison.judged(store: store).map { try JudgmentResults.of($0, store: store) }
    }

    /// One comparison for the HTML report (which escapes every cell).
    static func report(_ r: JudgmentResults) -> ReportData.Judging {
        func row(_ who: String, _ t: JudgeTally) -> [String] {
            let ci = t.interval
            return [
                who, "\(t.judged)", "\(t.wins)", "\(t.losses)", "\(t.ties)", "\(t.skips)", percent(t.winRate),
                t.judged > 0 ? "\(percent(ci.low))–\(percent(ci.high))" : "—",
            ]
        }
        return ReportData.Judging(
            title: "Compare run #\(r.stageRunId): model #\(r.modelId) against #\(r.otherModelId), \(r.judgedItems) of \(r.items) items judged",
            tallies: r.annotators.map { row($0.name, $0.tally) } + [row("overall", r.overall)],
            agreement: r.agreements.map {
                [
                    "\($0.annotators.0) & \($0.annotators.1)", "\($0.items)", percent($0.percent),
                    $0.kappa.isFinite ? String(format: "%.3f", $0.kappa) : "undefined",
                ]
            })
    }
}
