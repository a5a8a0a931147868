import Foundation
import RunStore
import SFT
import StageKit
import TransformerCore

/// `rlhf sft`: supervised fine-tuning of the policy on the run's demonstrations.
enum SFTCommand: Command {
    static let name = "sft"
    static let summary = "Fine-tune the policy on demonstrations (written, imported, or rejection-sampled)"
    static let help = """
        Usage: rlhf sft [--run NAME] [--from demonstrations|rankings|best-of N] [--scorer rm|lexicon|length]
                        [--epochs N] [--lr X] [--batch N] [--lora-rank R] [--precision f32|bf16] [--resume] [options]

        Supervised fine-tuning, InstructGPT's first step: trains the policy to write the run's
        demonstrations (those written in 'rlhf label --write' and imported with 'rlhf labels import
        --format sft'). The loss is the next-token cross-entropy of the completion's tokens only,
        its stop token included, averaged over those tokens; the prompt, templated as generation
        templates it, carries none (TRL's completion_only_loss). For an imported conversation
        (TRL's messages form) only the assistant's turns carry loss (TRL's assistant_only_loss):
        the tokens the chat template's {% generation %} blocks write, or, for a template without
        them, the text each assistant turn adds to the conversation before it.

        Rejection sampling (as Llama 2 used), for runs without written answers, stores its
        demonstrations in one transaction before training, then trains on every demonstration:
          --from rankings     each ranking's top completion (source rankings)
          --from best-of N    N samples per train prompt from the policy; the one --scorer scores
                              highest (rm: the reward model; lexicon, length: the simulated
                              labelers') becomes a demonstration (source best-of:N)
        Only completions that ended with a stop token are taken.

        Validation: the demonstrations of eval prompts when there are some, else a held-out share
        of the prompts (--val-fraction, seeded as train-reward and DPO split). AdamW with a linear
        learning-rate decay and gradient clipping. Each step is the pretraining step (one forward and
        backward over right-padded sequences), so it runs at 'rlhf pretrain''s tokens/s.

        Metrics, in TRL's names, per step: loss, mean_token_accuracy, entropy (over the completion
        tokens), num_tokens (tokens trained on so far, prompts included), grad_norm, learning_rate,
        epoch; after every epoch: eval_loss, eval_mean_token_accuracy, eval_entropy. See them with
        'rlhf curves --stage sft'.

        Checkpoints are registered as the run's policy every --save-every steps, at each epoch's end
        and when Ctrl-C stops the run, with the optimiser moments; 'rlhf sft --resume' continues an
        interrupted run (Ctrl-C, kill -9) from its last checkpoint with the same data and order, to
        the same weights as an uninterrupted run. When it finishes, the SFT policy is also
        registered as the run's reference, so ppo, dpo, grpo and generate start from it and measure
        their KL to it, as in InstructGPT; --keep-reference leaves the reference as it was (the
        base). 'rlhf status' shows which model is which.

        \(SFTConfig.optionsHelp(column: 24, then: [("--resume", ["continue the latest unfinished SFT run with its settings"]),
                                                   ("--json", ["print the closing figures as one JSON object"])]))
        """

    /// `--from best-of N` as one value, `best-of:N`, as the config reads it.
    static func joinBestOf(_ args: [String]) -> [String] {
        var out: [String] = [], i = 0
        while i < args.count {
            if args[i] == "--from", i + 2 < args.count, args[i + 1] == "best-of", Int(args[i + 2]) != nil {
                out += ["--from", "best-of:" + args[i + 2]]
                i += 3
            } else {
                out.append(args[i])
                i += 1
            }
        }
        return out
    }

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<SFTConfig>(joinBestOf(args), flags: ["--resume", "--json"])
        let a = parsed.arguments
        var s = parsed.config
        parsed.noteIgnoredSettings()
        let store = try parsed.startRun()
        if a.string("--policy") == "base" {
            guard let b = try store.latestModel(role: .base) else { throw RuntimeError("the run has no base model") }
            s.policyModel = b.id
        }
        let json = a.flag("--json")
        let say: (String) -> Void = json ? { printError($0) } : { print($0) }
        let sampleBar = LazyProgressBar("best-of", unit: "prompts"), bar = LazyProgressBar("sft", unit: "steps")
        var total = 0
        let r = try SFTStage.run(
            store: store, settings: s, resume: a.flag("--resume"),
            events: { e in
                switch e {
                case .sampling(let done, let n):
                    sampleBar.update(done, of: n)
                    if done == n { sampleBar.finish() }
                case .made(let made, let passed, let source):
                    say("\(source): \(made) demonstrations stored" + (passed > 0 ? " (\(passed) gave none: no finished completion)" : ""))
                case .started(let id, let at, let steps, let train, let val, let tooLong, let heldOut):
                    total = steps
                    say(
                        at > 0
                            ? "resuming SFT run #\(id) after step \(at) of \(steps)"
                            : "SFT run #\(id): \(train) training demonstrations, \(val) for validation (held out: \(heldOut)); \(steps) steps"
                                + (tooLong > 0 ? "; \(tooLong) left out (no completion token within --max-length)" : ""))
                case .step(let step, let st, _, _):
                    bar.update(step, of: total, note: String(format: "loss %.4f  accuracy %.3f", st.loss, st.meanTokenAccuracy))
                case .epoch(let n, let v):
                    bar.finish()
                    printError(
                        String(
                            format: "epoch %d: validation loss %.4f, token accuracy %.1f%%, entropy %.3f", n, v.loss, v.meanTokenAccuracy * 100,
                            v.entropy))
                case .saved(let step, let p):
                    if bar.bar == nil { printError("saved policy #\(p.id) at \(p.path) (step \(step))") }
                case .reference(let ref):
                    bar.finish()
                    say("the SFT policy is now the run's reference (model #\(ref.id)); later stages start from it and measure their KL to it")
                }
            }, shouldStop: { Interrupt.requested })
        bar.finish()
        if r.interrupted { throw RuntimeError("interrupted after step \(r.firstStep + r.stepsDone); continue with 'rlhf sft --resume'") }
        let last = r.epochs.last?.stats
        if json {
            var fields: [(String, String)] = [
                ("stage_run", "\(r.stageRunId)"), ("steps", "\(r.firstStep + r.stepsDone)"), ("made", "\(r.made)"),
                ("train", "\(r.trainExamples)"), ("validation", "\(r.validationExamples)"),
                ("policy", r.lastPolicy.map { "\($0.id)" } ?? "null"), ("reference", r.reference.map { "\($0.id)" } ?? "null"),
                ("train_seconds", jsonNumber(r.trainSeconds)), ("tokens_per_second", jsonNumber(r.tokensPerSecond.rounded())),
            ]
            if let last {
                fields += [
                    ("eval_loss", jsonNumber(last.loss)), ("eval_mean_token_accuracy", jsonNumber(last.meanTokenAccuracy)),
                    ("eval_entropy", jsonNumber(last.entropy)),
                ]
            }
            print(jsonLine(fields))
        } else {
            print(
                "SFT finished: \(r.firstStep + r.stepsDone) steps"
                    + String(format: " (%.0f tokens/s)", r.tokensPerSecond)
                    + "; the policy is #\(r.lastPolicy.map { "\($0.id) at \($0.path)" } ?? "unchanged")")
            if let last {
                print(
                    String(
                        format: "validation: loss %.4f, token accuracy %.1f%%, entropy %.3f", last.loss, last.meanTokenAccuracy * 100, last.entropy))
            }
        }
    }
}
