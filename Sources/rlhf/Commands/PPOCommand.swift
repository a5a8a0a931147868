import Foundation
import TransformerCore
import RunStore
import PPO

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
    without LoRA. Without --lr the learning rate is 10 times the default (1e-4).

    Options (defaults in brackets):
      --run NAME               the run [default]
      --iterations N           PPO iterations [20]
      --batch N                prompts per iteration [64]
      --response-length N      new tokens at most [48]
      --temperature X          sampling temperature, also used for log-probabilities [0.7]
      --missing-eos-penalty X  score of a completion without EOS, or 'none' [-1]
      --kl-coef X              β, fixed or the start of the adaptive controller [0.05]
      --target-kl X            adapt β towards this KL (horizon --kl-horizon [10000])
      --gamma X, --lambda X    GAE discount and λ [1, 0.95]
      --ppo-epochs N           passes over each batch [4]
      --minibatches N          minibatches per pass [4]
      --clip-range X           policy ratio clip ε [0.2]
      --clip-range-value X     value clip ε_v [0.2]
      --vf-coef X              c_v [0.1]
      --ent-coef X             c_ent [0.01]
      --lr X                   policy learning rate [1e-5]
      --value-lr X             value learning rate [same as --lr]
      --max-grad-norm X        gradient clipping [1]
      --adam-eps X             AdamW epsilon [1e-5]
      --whiten-rewards         whiten the per-token rewards before GAE
      --save-every N           checkpoint interval in iterations [10]
      --samples N              completions kept per iteration for inspection [4]
      --seed S                 seed [0]
      --resume                 continue the latest unfinished PPO run with its settings
    \(LoRAFlags.help(column: 27, dropout: false))
    """

    static func run(_ args: [String]) throws {
        let valued = ["--run", "--iterations", "--batch", "--response-length", "--temperature", "--missing-eos-penalty", "--kl-coef", "--target-kl",
                      "--kl-horizon", "--gamma", "--lambda", "--ppo-epochs", "--minibatches", "--clip-range", "--clip-range-value", "--vf-coef",
                      "--ent-coef", "--lr", "--value-lr", "--max-grad-norm", "--adam-eps", "--save-every", "--samples", "--seed"]
        let a = try Arguments(args, options: Set(valued).union(LoRAFlags.options), flags: ["--resume", "--whiten-rewards"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        var s = PPOSettings()
        func f(_ name: String, _ value: inout Float) throws {
            guard let v = a.string(name) else { return }
            guard let x = Float(v), x.isFinite else { throw UsageError("\(name) expects a number, got '\(v)'") }
            value = x
        }
        s.iterations = try a.int("--iterations", default: s.iterations, range: 1...1_000_000)!
        s.batch = try a.int("--batch", default: s.batch, range: 1...100_000)!
        s.responseLength = try a.int("--response-length", default: s.responseLength, range: 1...100_000)!
        s.ppoEpochs = try a.int("--ppo-epochs", default: s.ppoEpochs, range: 1...1000)!
        s.minibatches = try a.int("--minibatches", default: s.minibatches, range: 1...100_000)!
        s.saveEvery = try a.int("--save-every", default: s.saveEvery, range: 1...1_000_000)!
        s.samplesPerIteration = try a.int("--samples", default: s.samplesPerIteration, range: 0...1000)!
        s.seed = UInt64(try a.int("--seed", default: 0, range: 0...Int.max)!)
        s.lora = try LoRAFlags.parse(a)
        let frozen = try LoRAFlags.frozenDType(a)
        s.frozenDType = frozen == .f32 ? nil : frozen
        if s.lora != nil { s.learningRate *= 10 }
        try f("--temperature", &s.temperature); try f("--kl-coef", &s.klCoef); try f("--gamma", &s.gamma); try f("--lambda", &s.lambda)
        try f("--clip-range", &s.clipRange); try f("--clip-range-value", &s.clipRangeValue); try f("--vf-coef", &s.valueCoef)
        try f("--ent-coef", &s.entropyCoef); try f("--lr", &s.learningRate); try f("--max-grad-norm", &s.maxGradNorm); try f("--adam-eps", &s.adamEps)
        if let v = a.string("--value-lr") { var x: Float = 0; try f("--value-lr", &x); s.valueLearningRate = x; _ = v }
        if let v = a.string("--target-kl") { guard let x = Double(v), x > 0 else { throw UsageError("--target-kl expects a positive number") }; s.targetKL = x }
        if let v = a.string("--kl-horizon") { guard let x = Double(v), x > 0 else { throw UsageError("--kl-horizon expects a positive number") }; s.klHorizon = x }
        if let v = a.string("--missing-eos-penalty") {
            if v == "none" { s.missingEOSPenalty = nil } else {
                guard let x = Float(v), x.isFinite else { throw UsageError("--missing-eos-penalty expects a number or 'none', got '\(v)'") }
                s.missingEOSPenalty = x
            }
        }
        s.whitenRewards = a.flag("--whiten-rewards")
        if let problem = s.validationError() { throw UsageError(problem) }
        if a.flag("--resume") && args.contains(where: { (valued.contains($0) && $0 != "--run") || LoRAFlags.options.contains($0) }) {
            printError("note: --resume continues with the settings the run was started with; other options are ignored")
        }
        let store = try openRun(a)
        Interrupt.install()
        let header = "  iter   score      kl   kl_coef  entropy  clipfrac  approxkl  loss/v   len   eos   rollout  update"
        let r = try PPOStage.run(store: store, settings: s, resume: a.flag("--resume"), events: { e in
            switch e {
            case .started(let id, let at, let n, let skipped):
                print(at > 0 ? "resuming PPO run #\(id) after iteration \(at)" : "PPO run #\(id): \(n) train prompts" + (skipped > 0 ? " (\(skipped) too long, skipped)" : ""))
                print(header)
            case .iteration(let it, let res):
                func m(_ k: String) -> Double { res.metric(k) ?? .nan }
                print(String(format: "%6d %7.3f %7.3f %9.4f %8.2f %9.3f %9.4f %7.4f %5.1f %5.2f %7.1fs %6.1fs", it, m("objective/scores"), m("objective/kl"),
                             m("objective/kl_coef"), m("objective/entropy"), m("policy/clipfrac"), m("policy/approxkl"), m("loss/value"),
                             m("response/length_mean"), m("response/eos_fraction"), m("time/rollout_s"), m("time/update_s")))
            case .saved(let it, let p):
                print("  saved policy #\(p.id) at \(p.path) (iteration \(it))")
            case .warning(let w):
                printError("warning: " + w)
            }
        }, shouldStop: { Interrupt.requested })
        if r.interrupted { throw RuntimeError("interrupted after iteration \(r.firstIteration + r.iterationsDone); continue with 'rlhf ppo --resume'") }
        print("PPO finished: \(r.iterationsDone) iterations; the policy is \(r.lastPolicy?.path ?? "unchanged")")
    }
}
