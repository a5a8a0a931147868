import Foundation
import Labeling
import RunStore
import StageKit
import TransformerCore

/// `rlhf labels export|import|stats`.
enum LabelsCommand: Command {
    static let name = "labels"
    static let summary = "Export, import and summarise labels (labels export|import|stats)"
    static let help = """
        Usage: rlhf labels export [--run NAME] --format trl|trl-conversational|rankings|sft|sft-conversational [-o FILE]
               rlhf labels import FILE [--run NAME] [--annotator NAME]
               rlhf labels stats [--run NAME] [--json]

        export   trl: one {"prompt","chosen","rejected"} line per comparison, TRL's standard
                 preference form. The prompt is laid out as the run's model read it (its prompt
                 template, or its chat template), and a completion that stopped ends with the stop
                 token's text, so that transformers' tokenizer(prompt + chosen) gives the ids rlhf
                 scored. Use it with the tokenizer of the model you train.
                 trl-conversational: the same pairs as TRL's conversational form, the raw prompt as a
                 user turn and each completion as an assistant turn; the trainer applies the chat
                 template. Use it with a folder from 'rlhf export', whose chat template lays prompts
                 out as this run did, or when the run's prompts went through the model's own template.
                 rankings: one line per ranking (with the run's name and the ranked model's id),
                 its completions, ranks and metadata.
                 Each TRL line also carries an "rlhf" object, which TRL ignores: the format, the stop
                 text, and the origin (run, raw prompt, prompt, ranking, completion, model and stage
                 run ids, finish reasons, annotator). Only current rankings (an edited ranking's
                 earlier version is left out). The file goes to labels/RUN-FORMAT.jsonl unless -o
                 names one; '-o -' writes to stdout.
                 sft: one {"prompt","completion"} line per demonstration, TRL's prompt-completion form
                 for SFTTrainer: the prompt laid out as the run's model reads it (as for trl), the
                 completion the written answer followed by the stop token's text. A conversation of
                 several turns (imported) has its turns before the answer laid out by the chat template.
                 sft-conversational: one {"messages": [...]} line per demonstration, TRL's
                 conversational form: the raw prompt as a user turn (or an imported conversation as it
                 came) and the answer as the last assistant turn.
                 Every current demonstration is written: written in 'rlhf label', imported, or picked
                 by 'rlhf sft --from'; an edited one's earlier version is left out. Their "rlhf" object
                 holds the format, the stop text and the origin (run, raw prompt, prompt and
                 demonstration ids, annotator, source, the completion it started from, guideline
                 version, times).
        import   reads a TRL file in either form; each pair becomes a ranking of two (the chosen
                 text first) by --annotator (default: the file's annotator, else import). A file that
                 rlhf exported gives back the raw prompts, the completions without the stop text,
                 how each ended, and its origin, which a later export writes out unchanged. All or
                 nothing: a malformed line stops the import with its line number and imports nothing.
                 Missing prompts join the train split.
                 A file whose lines have "completion" or "messages" holds demonstrations: TRL's
                 prompt-completion form (strings, or lists of messages) or its conversational form
                 (the last assistant turn is the answer, the turns before it the prompt; the whole
                 list is kept, and the prompt the run stores is the last user turn). Each becomes a
                 demonstration with source import, by --annotator (default: the file's annotator,
                 else import); a file rlhf exported gives back the raw prompts, the answers without
                 the stop text, and the origin. All or nothing, as for pairs.
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
        let names = LabelsIO.Format.allCases.map(\.rawValue).joined(separator: ", ")
        guard let f = a.string("--format") else { throw UsageError("--format is required: \(names)") }
        guard let format = LabelsIO.Format(rawValue: f) else { throw UsageError("--format must be one of \(names), got '\(f)'") }
        let store = try openRun(a)
        let export = try LabelsIO.export(store: store, format: format, context: format == .rankings ? nil : try promptContext(store))
        let out = a.string("-o") ?? "labels/\(store.folder.lastPathComponent)-\(format.rawValue).jsonl"
        if out == "-" { FileHandle.standardOutput.write(Data(export.text.utf8)); return }
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(Data(export.text.utf8), to: url)
        let n = export.lines
        let noun = format == .rankings ? "ranking" : format.isDemonstrations ? "demonstration" : "pair"
        print("wrote \(n) \(noun)\(n == 1 ? "" : "s") to \(out)")
        if export.retokenized > 0 {
            print(
                "  \(export.retokenized) of \(n) \(noun)s tokenize differently as text than the ids rlhf generated and scored (a model may write a text in tokens other than the tokenizer's own split, or a token may merge across the end of the prompt); a trainer reading the text sees the tokenizer's split"
            )
        }
        if export.cutAtLength > 0 {
            print(
                "  \(export.cutAtLength) of \(n) pairs have a completion cut at the length limit; TRL's trainers append the tokenizer's EOS to it, which rlhf does not"
            )
        }
    }

    static func importPairs(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--annotator"], flags: [])
        guard a.positional.count == 1 else { throw UsageError(a.positional.isEmpty ? "missing FILE" : "give one FILE") }
        let path = a.positional[0]
        let data = try JSONText.readFile(URL(fileURLWithPath: path), limit: 1 << 30)
        if LabelsIO.holdsDemonstrations(data) {
            try importDemonstrations(data, path: path, a)
            return
        }
        let pairs = try LabelsIO.parseTRL(data, name: path)
        let store = try openRun(a)
        let run = try store.beginStageRun(stage: "label", config: jsonLine([("import", JSONText.quote(path))]), seed: nil)
        try store.failingStageRun(run) {
            var pairs = pairs
            if let name = a.string("--annotator") { for i in pairs.indices { pairs[i].annotator = name } }
            let r = try store.importPairs(
                pairs, annotator: "import", stageRunId: run,
                source: URL(fileURLWithPath: path).lastPathComponent)
            try store.finishStageRun(run, status: .succeeded)
            print(
                "imported \(r.rankings) pair\(r.rankings == 1 ? "" : "s") as rankings of two (\(r.newPrompts) new prompt\(r.newPrompts == 1 ? "" : "s"))"
            )
        }
    }

    /// `labels import` of a demonstrations file: one transaction, inside a label stage run.
    static func importDemonstrations(_ data: Data, path: String, _ a: Arguments) throws {
        var items = try LabelsIO.parseDemonstrations(data, name: path)
        if let name = a.string("--annotator") { for i in items.indices { items[i].annotator = name } }
        let store = try openRun(a)
        let run = try store.beginStageRun(stage: "label", config: jsonLine([("import", JSONText.quote(path))]), seed: nil)
        try store.failingStageRun(run) {
            let r = try store.importDemonstrations(items, annotator: "import", source: URL(fileURLWithPath: path).lastPathComponent)
            try store.finishStageRun(run, status: .succeeded)
            print(
                "imported \(r.demonstrations) demonstration\(r.demonstrations == 1 ? "" : "s") (\(r.newPrompts) new prompt\(r.newPrompts == 1 ? "" : "s"))"
            )
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
                jsonLine([
                    ("annotator", JSONText.quote($0.annotator)), ("count", "\($0.count)"), ("skip_rate", num($0.skipRate)),
                    ("flag_rate", num($0.flagRate)), ("median_seconds", num($0.medianSeconds)),
                ])
            }
            print(
                jsonLine([
                    ("annotators", "[" + ann.joined(separator: ",") + "]"), ("shared_items", "\(s.sharedItems)"),
                    ("pairwise_agreement", num(s.pairwiseAgreement)), ("kendall_tau", num(s.kendallTau)),
                    (
                        "position_bias",
                        jsonLine([
                            ("rankings", "\(s.rankedCount)"), ("first_shown_best", "\(s.firstShownBest)"),
                            ("rate", num(s.firstShownBestRate)), ("chance", num(s.chanceFirstBest)),
                        ])
                    ),
                ]))
            return
        }
        if s.annotators.isEmpty { print("no labels yet"); return }
        print("annotator              labels   skipped  flagged  median s/item")
        for x in s.annotators {
            print(
                TerminalSafe.escape(x.annotator, keepNewlines: false).padding(toLength: 22, withPad: " ", startingAt: 0)
                    + String(format: "%7d   %6.1f%%  %6.1f%%  %9.1f", x.count, x.skipRate * 100, x.flagRate * 100, x.medianSeconds))
        }
        if s.sharedItems > 0 {
            print(
                String(
                    format: "agreement on %d shared items: pairwise %.1f%%, Kendall's tau-b %.3f", s.sharedItems,
                    (s.pairwiseAgreement ?? 0) * 100, s.kendallTau ?? 0))
        } else {
            print("agreement: no item has been ranked by two annotators yet")
        }
        if s.rankedCount > 0 {
            print(
                String(
                    format: "position bias: the completion shown first was ranked best in %.1f%% of %d rankings (chance %.1f%%)",
                    s.firstShownBestRate * 100, s.rankedCount, s.chanceFirstBest * 100))
        }
    }
}
