import DPO
import Foundation
import RunStore
import StageKit
import TransformerCore

/// `rlhf dpo`: direct preference optimisation of the policy on the run's comparisons.
enum DPOCommand: Command {
    static let name = "dpo"
    static let summary = "Fine-tune the policy with DPO directly on the run's comparisons"
    static let help = """
        Usage: rlhf dpo [--run NAME] [--beta X] [--loss sigmoid|ipo|hinge] [--epochs N] [--lr X] [--resume] [options]

        Direct preference optimisation (Rafailov et al. 2023): trains the policy on the chosen and
        rejected completions of the run's rankings, with no reward model, value model or sampling.
        For each pair, h = (log π(y_w) − log π_ref(y_w)) − (log π(y_l) − log π_ref(y_l)), where
        log π(y) is summed over the completion's tokens (EOS included when it ended with one) after
        the prompt, templated as generation templates it. The losses:
          sigmoid  −(1−ε)·log σ(β·h) − ε·log σ(−β·h)   (ε = --label-smoothing; cDPO when ε > 0)
          ipo      (h − 1/(2β))²
          hinge    max(0, 1 − β·h)
        The C(K,2) pairs of a ranking are averaged, so every ranking counts the same, as in
        train-reward; the same prompts are held out for validation as train-reward holds out (same
        --seed and --val-fraction). Batches are laid out as generation lays them out (left-padded
        prompts). The reference's log-probabilities are computed once, before training, and stored in
        the stage run. AdamW with linear learning-rate decay and gradient clipping.

        Metrics, in TRL's names, per step: loss, rewards/chosen, rewards/rejected,
        rewards/accuracies, rewards/margins, logps/chosen, logps/rejected (rewards are β·(log π −
        log π_ref)), grad_norm, lr, epoch; on the validation prompts after every epoch, the same with
        an eval_ prefix (eval_loss, eval_rewards/accuracies, …). See them with
        'rlhf curves --stage dpo'.

        Checkpoints are registered as the run's policy (parent: the model trained from) every
        --save-every steps, at each epoch's end and when Ctrl-C stops the run, with the optimiser
        moments; 'rlhf dpo --resume' continues an interrupted run (Ctrl-C, kill -9) from its last
        checkpoint with the same metrics as an uninterrupted run.

        \(DPOConfig.optionsHelp(column: 24, then: [("--resume", ["continue the latest unfinished DPO run with its settings"]),
                                                   ("--json", ["print the closing figures as one JSON object"])]))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<DPOConfig>(args, flags: ["--resume", "--json"])
        let a = parsed.arguments
        var o = parsed.config
        parsed.noteIgnoredSettings()
        let store = try parsed.startRun()
        if a.string("--policy") == "base" {
            guard let b = try store.latestModel(role: .base) else { throw RuntimeError("the run has no base model") }
            o.policyModel = b.id
        }
        let json = a.flag("--json")
        let say: (String) -> Void = json ? { printError($0) } : { print($0) }
        let refBar = LazyProgressBar("reference log-probs", unit: "rankings"), bar = LazyProgressBar("dpo", unit: "steps")
        var total = 0
        let r = try DPOStage.run(
            store: store, options: o, resume: a.flag("--resume"),
            events: { e in
                switch e {
                case .started(let id, let at, let steps, let train, let val, let pairs):
                    total = steps
                    say(
                        at > 0
                            ? "resuming DPO run #\(id) after step \(at) of \(steps)"
                            : "DPO run #\(id): \(train) training rankings, \(val) validation rankings, \(pairs) pairs; \(steps) steps")
                case .reference(let done, let n):
                    refBar.update(done, of: n)
                    if done == n { refBar.finish() }
                case .step(let step, let s, _):
                    bar.update(step, of: total, note: String(format: "loss %.4f  accuracy %.2f  margin %.3f", s.loss, s.accuracy, s.margin))
                case .epoch(let n, let v):
                    bar.finish()
                    printError(
                        String(
                            format: "epoch %d: validation loss %.4f, accuracy %.1f%%, margin %.3f, rewards chosen %.3f rejected %.3f",
                            n, v.loss, v.accuracy * 100, v.margin, v.rewardsChosen, v.rewardsRejected))
                case .saved(let step, let p):
                    if bar.bar == nil { printError("saved policy #\(p.id) at \(p.path) (step \(step))") }
                }
            }, shouldStop: { Interrupt.requested })
        bar.finish()
        if r.interrupted { throw RuntimeError("interrupted after step \(r.firstStep + r.stepsDone); continue with 'rlhf dpo --resume'") }
        let last = r.epochs.last?.stats
        if json {
            var fields: [(String, String)] = [
                ("stage_run", "\(r.stageRunId)"), ("steps", "\(r.firstStep + r.stepsDone)"),
                ("policy", r.lastPolicy.map { "\($0.id)" } ?? "null"),
                ("reference_seconds", jsonNumber(r.referenceSeconds)), ("train_seconds", jsonNumber(r.trainSeconds)),
            ]
            if let last { fields += last.metrics(prefix: "eval_").map { ($0.0, jsonNumber($0.1)) } }
            print(jsonLine(fields))
        } else {
            print("DPO finished: \(r.firstStep + r.stepsDone) steps; the policy is #\(r.lastPolicy.map { "\($0.id) at \($0.path)" } ?? "unchanged")")
            if let last {
                print(String(format: "validation: accuracy %.1f%%, margin %.3f, loss %.4f", last.accuracy * 100, last.margin, last.loss))
            }
        }
    }
}
