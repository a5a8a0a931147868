import Foundation
import Generation
import RunStore
import StageKit
import TransformerCore

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

        \(GenerateConfig.optionsHelp(column: 22))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<GenerateConfig>(args), o = parsed.config, store = try parsed.startRun()
        let progress = LazyProgressBar("generate", unit: "completions")
        let r = try GenerateStage.run(store: store, options: o, progress: { progress.update($0, of: $1) }, shouldStop: { Interrupt.requested })
        progress.finish()
        if r.tooLong > 0 {
            printError(
                "warning: skipped \(r.tooLong) prompt\(r.tooLong == 1 ? "" : "s") longer than the context allows with --max-new-tokens \(o.maxNewTokens)"
            )
        }
        if r.stageRunId == nil {
            print(
                "nothing to do: all \(r.alreadyDone) prompts already have \(o.perPrompt) completions from the current policy (use --again for more)")
            return
        }
        print(
            "generated \(r.completions) completion\(r.completions == 1 ? "" : "s") for \(r.prompts) prompt\(r.prompts == 1 ? "" : "s")"
                + (r.alreadyDone > 0 ? "; \(r.alreadyDone) already had \(o.perPrompt)" : ""))
        if r.interrupted {
            throw RuntimeError("interrupted; the completions written so far are kept, and a rerun continues from there")
        }
    }
}
