import Foundation
import TransformerCore
import RunStore

/// `rlhf prompts add`: imports prompts into a run.
enum PromptsCommand: Command {
    static let name = "prompts"
    static let summary = "Import prompts into a run (prompts add FILE)"
    static let help = """
    Usage: rlhf prompts add FILE [--run NAME] [--split train|eval] [--format auto|jsonl|text]

    Reads FILE as JSONL, one {"prompt": "..."} object per line (other keys are kept as the
    prompt's metadata), or as plain text with one prompt per line; blank lines are ignored. With
    --format auto (the default) a .jsonl/.json file is JSONL, a .txt file is text, and otherwise a
    file whose first line starts with '{' is JSONL.

    The import is all or nothing: a malformed line (bad JSON, no "prompt" key, an empty prompt,
    invalid UTF-8) stops it with its line number and imports nothing. Prompts already in the run,
    or repeated in the file, are skipped and counted.

    Options:
      --run NAME      the run (default: default)
      --split S       train (default) or eval
      --format F      auto (default), jsonl or text
    """

    static func run(_ args: [String]) throws {
        guard args.first == "add" else {
            throw UsageError(args.isEmpty ? "missing subcommand; use 'rlhf prompts add FILE'" : "unknown subcommand '\(args[0])'; use 'rlhf prompts add FILE'")
        }
        let a = try Arguments(Array(args.dropFirst()), options: ["--run", "--split", "--format"], flags: [])
        guard a.positional.count == 1 else { throw UsageError(a.positional.isEmpty ? "missing FILE" : "give one FILE at a time") }
        let splitName = a.string("--split") ?? "train"
        guard let split = PromptSplit(rawValue: splitName) else { throw UsageError("--split must be train or eval, got '\(splitName)'") }
        let formatName = a.string("--format") ?? "auto"
        guard let format = PromptFile.Format(rawValue: formatName) else { throw UsageError("--format must be auto, jsonl or text, got '\(formatName)'") }
        let store = try openRun(a)
        let file = URL(fileURLWithPath: a.positional[0])
        let prompts = try PromptFile.read(file, format: format)
        let run = try store.beginStageRun(stage: "prompts", config: jsonLine([("file", JSONText.quote(file.path)), ("split", JSONText.quote(split.rawValue))]), seed: nil)
        do {
            let (imported, skipped) = try store.addPrompts(prompts, split: split, source: file.lastPathComponent)
            try store.finishStageRun(run, status: .succeeded)
            print("imported \(imported) \(split.rawValue) prompt\(imported == 1 ? "" : "s"), skipped \(skipped) duplicate\(skipped == 1 ? "" : "s") (from \(file.path))")
        } catch {
            try? store.finishStageRun(run, status: .failed, error: "\(error)")
            throw error
        }
    }
}
