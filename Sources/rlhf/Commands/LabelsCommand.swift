import Foundation
import TransformerCore
import RunStore
import Labeling

/// `rlhf labels export|import|stats`.
enum LabelsCommand: Command {
    static let name = "labels"
    static let summary = "Export, import and summarise labels (labels export|import|stats)"
    static let help = """
    Usage: rlhf labels export [--run NAME] --format trl|rankings [-o FILE]
           rlhf labels import FILE [--run NAME] [--annotator NAME]
           rlhf labels stats [--run NAME] [--json]

    export   trl: one {"prompt","chosen","rejected"} line per comparison, as TRL and OpenRLHF
             read it; rankings: one line per ranking with its completions, ranks and metadata.
             Only current rankings (an edited ranking's earlier version is left out). The file
             goes to labels/RUN-FORMAT.jsonl unless -o names one; '-o -' writes to stdout.
    import   reads a trl file; each pair becomes a ranking of two (the chosen text first) by
             --annotator (default: import). All or nothing: a malformed line stops the import
             with its line number and imports nothing. Missing prompts join the train split.
    stats    per annotator: labels, skip and flag rates, median seconds per item; agreement on
             items ranked by two or more annotators (pairwise agreement and Kendall's tau-b);
             position bias: how often the completion shown first was ranked best, against chance.
    """

    static func run(_ args: [String]) throws {
        guard let sub = args.first else { throw UsageError("missing subcommand; use export, import or stats") }
        let rest = Array(args.dropFirst())
        switch sub {
        case "export": try export(rest)
        case "import": try importPairs(rest)
        case "stats": try stats(rest)
        default: throw UsageError("unknown subcommand '\(sub)'; use export, import or stats")
        }
    }

    static func export(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--format", "-o"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let f = a.string("--format") else { throw UsageError("--format trl|rankings is required") }
        guard let format = LabelsIO.Format(rawValue: f) else { throw UsageError("--format must be trl or rankings, got '\(f)'") }
        let store = try openRun(a)
        let (text, n) = try LabelsIO.export(store: store, format: format)
        let out = a.string("-o") ?? "labels/\(store.folder.lastPathComponent)-\(format.rawValue).jsonl"
        if out == "-" { FileHandle.standardOutput.write(Data(text.utf8)); return }
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(Data(text.utf8), to: url)
        print("wrote \(n) \(format == .trl ? "pair" : "ranking")\(n == 1 ? "" : "s") to \(out)")
    }

    static func importPairs(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--annotator"], flags: [])
        guard a.positional.count == 1 else { throw UsageError(a.positional.isEmpty ? "missing FILE" : "give one FILE") }
        let path = a.positional[0]
        let data = try JSONText.readFile(URL(fileURLWithPath: path), limit: 1 << 30)
        let pairs = try LabelsIO.parseTRL(data, name: path)
        let store = try openRun(a)
        let run = try store.beginStageRun(stage: "label", config: jsonLine([("import", JSONText.quote(path))]), seed: nil)
        do {
            let r = try store.importPairs(pairs, annotator: a.string("--annotator") ?? "import", stageRunId: run,
                                          source: URL(fileURLWithPath: path).lastPathComponent)
            try store.finishStageRun(run, status: .succeeded)
            print("imported \(r.rankings) pair\(r.rankings == 1 ? "" : "s") as rankings of two (\(r.newPrompts) new prompt\(r.newPrompts == 1 ? "" : "s"))")
        } catch {
            try? store.finishStageRun(run, status: .failed, error: "\(error)")
            throw error
        }
    }

    static func stats(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run"], flags: ["--json"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let store = try openRun(a)
        let s = LabelsIO.stats(try store.rankings().map(\.ranking))
        func num(_ x: Double?) -> String { x.map { jsonNumber((($0 * 10000).rounded()) / 10000) } ?? "null" }
        if a.flag("--json") {
            let ann = s.annotators.map {
                jsonLine([("annotator", JSONText.quote($0.annotator)), ("count", "\($0.count)"), ("skip_rate", num($0.skipRate)),
                          ("flag_rate", num($0.flagRate)), ("median_seconds", num($0.medianSeconds))])
            }
            print(jsonLine([("annotators", "[" + ann.joined(separator: ",") + "]"), ("shared_items", "\(s.sharedItems)"),
                            ("pairwise_agreement", num(s.pairwiseAgreement)), ("kendall_tau", num(s.kendallTau)),
                            ("position_bias", jsonLine([("rankings", "\(s.rankedCount)"), ("first_shown_best", "\(s.firstShownBest)"),
                                                        ("rate", num(s.firstShownBestRate)), ("chance", num(s.chanceFirstBest))]))]))
            return
        }
        if s.annotators.isEmpty { print("no labels yet"); return }
        print("annotator              labels   skipped  flagged  median s/item")
        for x in s.annotators {
            print(TerminalSafe.escape(x.annotator, keepNewlines: false).padding(toLength: 22, withPad: " ", startingAt: 0)
                  + String(format: "%7d   %6.1f%%  %6.1f%%  %9.1f", x.count, x.skipRate * 100, x.flagRate * 100, x.medianSeconds))
        }
        if s.sharedItems > 0 {
            print(String(format: "agreement on %d shared items: pairwise %.1f%%, Kendall's tau-b %.3f", s.sharedItems,
                         (s.pairwiseAgreement ?? 0) * 100, s.kendallTau ?? 0))
        } else {
            print("agreement: no item has been ranked by two annotators yet")
        }
        if s.rankedCount > 0 {
            print(String(format: "position bias: the completion shown first was ranked best in %.1f%% of %d rankings (chance %.1f%%)",
                         s.firstShownBestRate * 100, s.rankedCount, s.chanceFirstBest * 100))
        }
    }
}
