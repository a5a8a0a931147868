import Foundation
import GRPO
import RunStore
import StageKit
import TransformerCore

/// `rlhf grpo`: critic-free online RL of the policy (GRPO, Dr. GRPO, DAPO, RLOO).
enum GRPOCommand: Command {
    static let name = "grpo"
    static let summary = "Fine-tune the policy with GRPO, Dr. GRPO, DAPO or RLOO (no value model)"
    static let help = """
        Usage: rlhf grpo [--run NAME] [--group K] [--advantage group|rloo] [--loss grpo|bnpo|dr_grpo|dapo]
                         [--reward rm:1,cmd:0.5,lexicon:1,length:0.1] [--reward-cmd CMD] [--resume] [options]

        Group-relative policy optimisation as TRL's GRPOTrainer runs it, with no value model. Each
        iteration samples --group K completions of each of --batch train prompts from the policy
        (truncated after the first EOS), scores them with the reward, and turns each score r into an
        advantage within its prompt's group:
          --advantage group  (r − mean of the group) / (std + 1e-4), the std under --scale-rewards:
                             the group's, the batch's, or none (Dr. GRPO)
          --advantage rloo   r − the mean of the other K − 1 (RLOO; unscaled unless --scale-rewards)
        Then --num-iterations μ optimiser steps (AdamW, linear decay, gradient clipping), each over
        every completion token, in micro-batches whose gradients accumulate. Per token, with
        ρ = π/π_old (log-probabilities at the sampling temperature):
          ℓ = −min(ρ·A, clip(ρ, 1 − ε, 1 + ε_high)·A) + β·(π_ref/π − log(π_ref/π) − 1)
        The old policy is the one that sampled, so the first step's ratio is exactly 1. --loss sums
        the token losses as TRL's loss_type does: grpo averages each completion's token mean; bnpo
        divides each micro-batch's sum by its tokens; dr_grpo divides by completions × --response-length;
        dapo (the default) divides by the batch's tokens. --mask-truncated leaves completions that
        reach --response-length out of the loss. With β = 0 (the default) no reference pass runs.

        The reward is a weighted sum of sources (--reward NAME:WEIGHT,…): rm, the run's reward model
        (normalised; the default); lexicon and length, the simulated labelers' scores (--lexicon DIR,
        --target-length N); and cmd, a program of yours (--reward-cmd "python3 my_reward.py"). The
        program is started once per iteration with /bin/sh -c in the current folder; it reads one
        JSON object per completion on stdin, {"prompt": …, "completion": …, "prompt_id": …}, and
        writes one {"reward": x} line for each, in order; what it writes on stderr is passed through.
        A program that exits non-zero, writes a line that is not a finite number, answers too few or
        too many lines, or runs past --reward-timeout is stopped with everything it started, and the
        stage ends with one line naming the problem: nothing of that iteration is kept, and
        'rlhf grpo --resume' continues from the last checkpoint.

        Metrics, per iteration, under TRL's names: reward, reward_std, frac_reward_zero_std,
        rewards/NAME/mean and /std, completions/mean_length (and min, max, terminated lengths),
        completions/clipped_ratio, kl (when β ≠ 0), entropy, clip_ratio/low_mean, low_min, high_mean,
        high_max, region_mean, policy_loss, grad_norm, learning_rate. See them with
        'rlhf curves --stage grpo'.

        Every --save-every iterations (and at the end) the policy is saved and registered as the run's
        policy with the optimiser moments and the random generator, so that 'rlhf grpo --resume'
        continues an interrupted run (Ctrl-C, kill -9) with the same metrics as an uninterrupted one.
        With --lora-rank the policy trains adapters over its frozen starting weights, which the
        reference shares; without --lr the learning rate is \(Int(LoRAOptions.learningRateFactor)) times the default.

        \(GRPOConfig.optionsHelp(column: 27, then: [("--resume", ["continue the latest unfinished GRPO run with its settings"])]))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<GRPOConfig>(args, flags: ["--resume"]), a = parsed.arguments
        var s = parsed.config
        parsed.noteIgnoredSettings()
        let store = try parsed.startRun()
        if a.string("--policy") == "base" {
            guard let b = try store.latestModel(role: .base) else { throw RuntimeError("the run has no base model") }
            s.policyModel = b.id
        }
        let header = "  iter  reward  r_std  zero_std  length  clipped  entropy      kl  clip_low clip_high   loss    gen  update"
        let r = try GRPOStage.run(
            store: store, settings: s, resume: a.flag("--resume"),
            events: { e in
                switch e {
                case .started(let id, let at, let n, let skipped):
                    print(
                        at > 0
                            ? "resuming GRPO run #\(id) after iteration \(at)"
                            : "GRPO run #\(id): \(n) train prompts" + (skipped > 0 ? " (\(skipped) too long, skipped)" : ""))
                    print(header)
                case .iteration(let it, let res):
                    func m(_ k: String) -> Double { res.metric(k) ?? .nan }
                    print(
                        String(
                            format: "%6d %7.3f %6.3f %9.2f %7.1f %8.2f %8.2f %7.4f %9.3f %9.3f %7.4f %5.1fs %6.1fs", it, m("reward"),
                            m("reward_std"), m("frac_reward_zero_std"), m("completions/mean_length"), m("completions/clipped_ratio"),
                            m("entropy"), m("kl"), m("clip_ratio/low_mean"), m("clip_ratio/high_mean"), m("policy_loss"),
                            m("time/generation_s"), m("time/update_s")))
                case .saved(let it, let p):
                    print("  saved policy #\(p.id) at \(p.path) (iteration \(it))")
                case .rewardProgramStderr(let text):
                    FileHandle.standardError.write(Data(text.utf8))
                }
            }, shouldStop: { Interrupt.requested })
        if r.interrupted {
            throw RuntimeError("interrupted after iteration \(r.firstIteration + r.iterationsDone); continue with 'rlhf grpo --resume'")
        }
        print("GRPO finished: \(r.iterationsDone) iterations; the policy is \(r.lastPolicy?.path ?? "unchanged")")
    }
}
