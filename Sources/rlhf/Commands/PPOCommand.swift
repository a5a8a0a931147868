import Foundation
import PPO
import RunStore
import StageKit
import TransformerCore

/// `rlhf ppo`: fine-tunes the policy against the reward model.
enum PPOCommand: Command {
    static let name = "ppo"
    static let summary = "Fine-tune the policy with PPO against the reward model"
    static let help = """
        Usage: rlhf ppo [--run NAME] [--iterations N] [--batch N] [--resume] [--seed S] [options]

        PPO as in InstructGPT and lm-human-preferences. Each iteration samples --batch train prompts,
        generates with the policy (truncated after the first EOS), scores prompt + completion with the
        normalised reward model (a completion without EOS gets --missing-eos-penalty instead), and
        computes log-probabilities under the policy and the frozen reference (logits divided by the
        sampling temperature) and values. Per-token rewards are -β·(logp - logp_ref) with the score
        added at the last token; advantages come from GAE (γ, λ) and are whitened; returns are
        advantages + values. Then --ppo-epochs passes over --minibatches shuffled minibatches update
        the policy (clipped surrogate, ε = --clip-range, and an entropy bonus) and the value model
        (initialised from the reward model, clipped value loss), with AdamW and linear learning-rate
        decay. Tokens after EOS are masked out of every loss. L = L_pg + c_v·L_v - c_ent·H.

        Every --save-every iterations (and at the end) the policy and value model are saved as
        checkpoints and registered, with the optimiser moments, the random generator and β, so that
        'rlhf ppo --resume' continues an interrupted run (Ctrl-C, kill -9) from its last save with the
        same metrics as an uninterrupted run. A NaN or infinite loss or parameter stops the run and
        leaves the last saved checkpoint intact.

        With --lora-rank, the policy trains low-rank adapters over its starting weights, which stay
        frozen and are shared with the reference (the reference pass is the same weights without
        the adapters, so no second copy is held), and the value model trains adapters and a head of
        its own over the reward model's frozen trunk, which the reward shares too. Checkpoints hold
        the adapters (PEFT's files), registered over the model they adapt; --resume is as exact as
        without LoRA. Without --lr the learning rate is \(Int(LoRAOptions.learningRateFactor)) times the default.

        \(PPOConfig.optionsHelp(column: 27, then: [("--resume", ["continue the latest unfinished PPO run with its settings"])]))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<PPOConfig>(args, flags: ["--resume"]), a = parsed.arguments, s = parsed.config
        parsed.noteIgnoredSettings()
        let store = try parsed.startRun()
        let header = "  iter   score      kl   kl_coef  entropy  clipfrac  approxkl  loss/v   len   eos   rollout  update"
        let r = try PPOStage.run(
            store: store, settings: s, resume: a.flag("--resume"),
            events: { e in
                switch e {
                case .started(let id, let at, let n, let skipped):
                    print(
                        at > 0
                            ? "resuming PPO run #\(id) after iteration \(at)"
                            : "PPO run #\(id): \(n) train prompts" + (skipped > 0 ? " (\(skipped) too long, skipped)" : ""))
                    print(header)
                case .iteration(let it, let res):
                    func m(_ k: String) -> Double { res.metric(k) ?? .nan }
                    print(
                        String(
                            format: "%6d %7.3f %7.3f %9.4f %8.2f %9.3f %9.4f %7.4f %5.1f %5.2f %7.1fs %6.1fs", it, m("objective/scores"),
                            m("objective/kl"),
                            m("objective/kl_coef"), m("objective/entropy"), m("policy/clipfrac"), m("policy/approxkl"), m("loss/value"),
                            m("response/length_mean"), m("response/eos_fraction"), m("time/rollout_s"), m("time/update_s")))
                case .saved(let it, let p):
                    print("  saved policy #\(p.id) at \(p.path) (iteration \(it))")
                case .warning(let w):
                    printError("warning: " + w)
                }
            }, shouldStop: { Interrupt.requested })
        if r.interrupted {
            throw RuntimeError("interrupted after iteration \(r.firstIteration + r.iterationsDone); continue with 'rlhf ppo --resume'")
        }
        print("PPO finished: \(r.iterationsDone) iterations; the policy is \(r.lastPolicy?.path ?? "unchanged")")
    }
}
