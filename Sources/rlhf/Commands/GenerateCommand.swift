import Foundation
import TransformerCore
import RunStore
import Generation

/// `rlhf generate`: K completions per prompt from the current policy.
enum GenerateCommand: Command {
    static let name = "generate"
    static let summary = "Sample completions of the run's prompts from the current policy"
    static let help = """
    Usage: rlhf generate [--run NAME] [--per-prompt K] [--max-new-tokens N] [--temperature X]
                         [--top-k K] [--top-p P] [--seed S] [--split S] [--limit N] [--again]
                         [--batch B]

    Samples K completions for each prompt with batched KV-cache decoding from the run's current
    policy, and stores each with its text, token ids, finish reason (eos or length), sum of
    log-probabilities, sampling settings, model and stage run. Prompts are wrapped in the
    policy's prompt template when it has one; completions are stored without it.

    It is idempotent: prompts that already have K completions from the current policy are
    skipped unless --again, and a prompt with fewer gets the rest. Completions are committed a
    batch at a time, so an interruption (Ctrl-C, or even kill -9) loses at most the batch in
    flight and a rerun continues where it stopped, drawing the same samples as an uninterrupted
    run with the same seed.

    Options:
      --run NAME          the run (default: default)
      --per-prompt K      completions per prompt (default 4)
      --max-new-tokens N  new tokens at most (default 48)
      --temperature X     sampling temperature (default 0.7)
      --top-k K           top-k sampling (default: off)
      --top-p P           nucleus sampling (default 1: off)
      --seed S            random seed (default 0)
      --split S           train (default), eval or all
      --limit N           at most N prompts in this run
      --again             K more completions even for prompts that have K already
      --batch B           sequences per forward pass (default 32)
    """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--per-prompt", "--max-new-tokens", "--temperature", "--top-k", "--top-p",
                                              "--seed", "--split", "--limit", "--batch"], flags: ["--again"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        var o = GenerateOptions()
        o.perPrompt = try a.int("--per-prompt", default: 4, range: 1...64)!
        o.maxNewTokens = try a.int("--max-new-tokens", default: 48, range: 1...100_000)!
        o.sampling = try SampleCommand.samplingSettings(a)
        o.seed = UInt64(try a.int("--seed", default: 0, range: 0...Int.max)!)
        switch a.string("--split") ?? "train" {
        case "all": o.split = nil
        case let s: guard let split = PromptSplit(rawValue: s) else { throw UsageError("--split must be train, eval or all, got '\(s)'") }; o.split = split
        }
        o.limit = try a.int("--limit", range: 1...Int.max)
        o.again = a.flag("--again")
        o.batchSize = try a.int("--batch", default: 32, range: 1...4096)!
        let store = try openRun(a)
        Interrupt.install()
        let progress = progressCallback("generate", unit: "completions")
        let r = try GenerateStage.run(store: store, options: o, progress: progress.update, shouldStop: { Interrupt.requested })
        progress.bar()?.finish()
        if r.tooLong > 0 {
            printError("warning: skipped \(r.tooLong) prompt\(r.tooLong == 1 ? "" : "s") longer than the context allows with --max-new-tokens \(o.maxNewTokens)")
        }
        if r.stageRunId == nil {
            print("nothing to do: all \(r.alreadyDone) prompts already have \(o.perPrompt) completions from the current policy (use --again for more)")
            return
        }
        print("generated \(r.completions) completion\(r.completions == 1 ? "" : "s") for \(r.prompts) prompt\(r.prompts == 1 ? "" : "s")"
              + (r.alreadyDone > 0 ? "; \(r.alreadyDone) already had \(o.perPrompt)" : ""))
        if r.interrupted {
            throw RuntimeError("interrupted; the completions written so far are kept, and a rerun continues from there")
        }
    }
}
