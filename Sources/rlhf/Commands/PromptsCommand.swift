import Foundation
import Labeling
import RunStore
import StageKit
import TransformerCore

/// `rlhf prompts add|export`: imports prompts into a run, and writes them out for other tools.
enum PromptsCommand: Command {
    static let name = "prompts"
    static let summary = "Import prompts into a run, or export them (prompts add FILE, prompts export)"
    static let help = """
        Usage: rlhf prompts add FILE [--run NAME] [--split train|eval] [--format auto|jsonl|text]
                               [--key NAME]
               rlhf prompts export [--run NAME] [--split train|eval|all] [-o FILE]

        Reads FILE as JSONL, one {"prompt": "..."} object per line (other keys are kept as the
        prompt's metadata; --key names another key, such as question or instruction), or as plain
        text with one prompt per line; blank lines are ignored. A prompt may also be TRL's
        conversational form, [{"role": "user", "content": "..."}]: one user message. With
        --format auto (the default) a .jsonl/.json file is JSONL, a .txt file is text, and otherwise a
        file whose first line starts with '{' is JSONL.

        The import is all or nothing: a malformed line (bad JSON, no "prompt" key, an empty prompt,
        invalid UTF-8) stops it with its line number and imports nothing. Prompts already in the run,
        or repeated in the file, are skipped and counted.

        export writes the run's prompts (default: the train split) as JSONL for an online trainer
        elsewhere, one line per prompt, laid out as the run's policy reads them:
          "prompt"  the text TRL's trainers tokenize with tokenizer(text) (GRPO, RLOO)
          "input"   the text OpenRLHF's PPO reads with --data.input_key input and no chat template
                    (the same text, with the tokens the tokenizer puts first, such as Llama 3's
                    <|begin_of_text|>, written out, since OpenRLHF adds no special tokens)
          "chat"    the raw prompt as one user turn, for OpenRLHF's --data.input_key chat
                    --data.apply_chat_template with the folder 'rlhf export' writes
          "rlhf"    the run, the raw prompt, its id and split (ignored by both)
        The file goes to labels/RUN-prompts.jsonl unless -o names one; '-o -' writes to stdout.

        Options:
          --run NAME      the run (default: default)
          --split S       train (default) or eval
          --format F      auto (default), jsonl or text
          --key NAME      the JSON key that holds each prompt (default: prompt); the file is read
                          as JSONL
        """

    static func run(_ args: [String]) throws {
        if args.first == "export" { return try export(Array(args.dropFirst())) }
        guard args.first == "add" else {
            throw UsageError(
                args.isEmpty
                    ? "missing subcommand; use 'rlhf prompts add FILE' or 'rlhf prompts export'"
                    : "unknown subcommand '\(args[0])'; use 'rlhf prompts add FILE' or 'rlhf prompts export'")
        }
        let a = try Arguments(Array(args.dropFirst()), options: ["--run", "--split", "--format", "--key"], flags: [])
        guard a.positional.count == 1 else { throw UsageError(a.positional.isEmpty ? "missing FILE" : "give one FILE at a time") }
        let splitName = a.string("--split") ?? "train"
        guard let split = PromptSplit(rawValue: splitName) else { throw UsageError("--split must be train or eval, got '\(splitName)'") }
        let formatName = a.string("--format") ?? "auto"
        guard let format = PromptFile.Format(rawValue: formatName) else {
            throw UsageError("--format must be auto, jsonl or text, got '\(formatName)'")
        }
        let store = try openRun(a)
        let file = URL(fileURLWithPath: a.positional[0])
        let key = a.string("--key") ?? "prompt"
        guard !key.isEmpty else { throw UsageError("--key needs a key name") }
        if a.string("--key") != nil && format == .text { throw UsageError("--key applies to JSONL files, not to --format text") }
        // A key only means something in JSONL: --key reads the file as JSONL whatever its name.
        let prompts = try PromptFile.read(file, format: a.string("--key") != nil && format == .auto ? .jsonl : format, key: key)
        let run = try store.beginStageRun(
            stage: "prompts", config: jsonLine([("file", JSONText.quote(file.path)), ("split", JSONText.quote(split.rawValue))]), seed: nil)
        try store.failingStageRun(run) {
            let (imported, skipped) = try store.addPrompts(prompts, split: split, source: file.lastPathComponent)
            try store.finishStageRun(run, status: .succeeded)
            print(
                "imported \(imported) \(split.rawValue) prompt\(imported == 1 ? "" : "s"), skipped \(skipped) duplicate\(skipped == 1 ? "" : "s") (from \(file.path))"
            )
        }
    }

    static func export(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--split", "-o"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let splitName = a.string("--split") ?? "train"
        guard splitName == "all" || PromptSplit(rawValue: splitName) != nil else {
            throw UsageError("--split must be train, eval or all, got '\(splitName)'")
        }
        let store = try openRun(a)
        let prompts = try store.prompts(split: PromptSplit(rawValue: splitName))
        guard !prompts.isEmpty else {
            throw RuntimeError("the run has no \(splitName == "all" ? "" : splitName + " ")prompts; add some with 'rlhf prompts add FILE'")
        }
        let text = try LabelsIO.exportPrompts(prompts, run: store.folder.lastPathComponent, context: try promptContext(store))
        let out = a.string("-o") ?? "labels/\(store.folder.lastPathComponent)-prompts.jsonl"
        if out == "-" { FileHandle.standardOutput.write(Data(text.utf8)); return }
        let url = URL(fileURLWithPath: out)
        try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
        try AtomicFile.write(Data(text.utf8), to: url)
        print("wrote \(prompts.count) prompt\(prompts.count == 1 ? "" : "s") to \(out)")
    }
}
