import Compare
import Curves
import DPO
import Foundation
import GRPO
import Generation
import Labeling
import PPO
import RewardTraining
import RunStore
import SFT
import StageKit
import TransformerCore

/// `rlhf demo`: the whole loop on the built-in default, with a measured result.
enum DemoCommand: Command {
    static let name = "demo"
    static let summary = "Run the whole RLHF loop on the built-in base model and prompts"
    static let help = """
        Usage: rlhf demo [--run NAME] [--quick] [--sft] [--dpo] [--grpo] [--lora-rank R [--frozen-dtype bf16]] [--precision f32|bf16]
                         [--json] [--force]

        Runs every stage with a simulated labeler in place of a person, and measures the result:
          1. base model: pretrained from prompts/corpus.txt on first use, then cached
          2. init the run (default name: demo)
          3. the bundled prompts (400 train, 120 eval)
             with --sft: rejection-sampling SFT first, InstructGPT's first step with the simulated
             labeler in place of the writer: 6 samples per train prompt from the base policy, the
             one the lexicon labeler scores highest kept as a demonstration ('rlhf sft --from
             best-of 6 --scorer lexicon'), then SFT on them with PPO's learning rate and TRL's
             defaults for the rest (3 epochs, batch 8), not tuned to win; the SFT policy is then
             the policy and the reference of every stage below
          4. generate 6 completions per train prompt
          5. simulated labeling: the lexicon labeler (labels/lexicon) with a little noise (0.05)
          6. train-reward
          7. PPO
          8. with --dpo: DPO from the base policy on the same labels (3 epochs, the PPO learning rate)
          9. with --grpo: GRPO from the base policy against the same reward model, set up as PPO is
             (its iterations, learning rate, seed, response length and temperature, and as many
             completions per iteration: 8 prompts × a group of 8), with GRPO's own defaults (TRL's)
             for the rest
         10. the curves, in the terminal
         11. an HTML report
        Then, on the eval prompts, it compares samples of the base policy with samples of the final
        policy (with --sft, of the SFT policy and of SFT+PPO, each KL to its own reference: the base
        for SFT, the SFT policy for the stages after it): the mean lexicon score, how often the lexicon labeler (noise 0) prefers the final
        policy's completion, the mean KL to the reference, and the reward model's accuracy. With
        --dpo and --grpo it does the same for the DPO and GRPO policies and puts the rows side by
        side (with each method's time), then compares each with PPO (and GRPO with DPO) head to
        head under the lexicon labeler, as 'rlhf compare --judge lexicon' does.

        Run it from the project's folder. --quick uses a smaller base model and fewer iterations
        (about a minute); without it, a few minutes on 2 cores. An earlier demo run of the same name
        is replaced; any other run is kept unless --force.

        Options:
          --run NAME   the run (default: demo)
          --quick      the short version
          --sft        rejection-sampling SFT before the reward model and PPO, and base, SFT and
                       SFT+PPO side by side
          --dpo        also run DPO beside PPO, and compare them
          --grpo       also run GRPO beside PPO, and compare them
          --lora-rank R  train the reward model, PPO and GRPO with rank-R LoRA adapters (alpha 2R, every
                       projection) over frozen weights instead of every weight, at LoRA's learning
                       rates (10 times the full ones)
          --frozen-dtype T  with --lora-rank: f32 or bf16, the float type of the frozen weights
                       (default f32)
          --precision P  f32 or bf16: the matrix products of every stage and of the closing
                       measurement in single precision, or with bfloat16 operands (default f32;
                       the cached base model is always pretrained in f32)
          --json       print the closing figures as one JSON object (progress still goes to stderr)
          --force      replace a run of that name even if a demo did not create it
        """

    struct Plan {
        var base: DefaultBase.Recipe
        var rewardEpochs: Int
        var perPrompt: Int
        var ppo: PPOConfig
        var dpo: DPOConfig
        var grpo: GRPOConfig
        var sft: SFTConfig
        static func make(quick: Bool) -> Plan {
            var p = PPOConfig()
            p.iterations = quick ? 8 : 24
            p.batch = 64
            p.learningRate = 1e-4
            p.klCoef = 0.1
            p.targetKL = 6
            p.klHorizon = 10_000
            p.saveEvery = quick ? 8 : 12
            p.seed = 1
            // DPO as train-reward and PPO are set: the reward model's epochs and seed (so the
            // same prompts are held out), PPO's learning rate, and DPO's usual β.
            var d = DPOConfig()
            d.epochs = 3; d.learningRate = p.learningRate; d.seed = 1
            // GRPO as PPO is set: its iterations, completions per iteration (8 prompts × 8),
            // learning rate, seed, length and temperature; TRL's defaults for the rest (β = 0,
            // dapo, ε = 0.2, μ = 1), not tuned to win.
            var g = GRPOConfig()
            g.iterations = p.iterations; g.group = 8; g.batch = p.batch / g.group; g.learningRate = p.learningRate; g.seed = 1
            g.responseLength = p.responseLength; g.temperature = p.temperature; g.saveEvery = p.saveEvery
            // SFT as PPO is set: its learning rate, seed, length and temperature, as many samples per
            // prompt as generate takes; TRL's defaults for the rest (3 epochs, batch 8).
            var f = SFTConfig()
            f.from = .bestOf(6); f.scorer = .lexicon; f.learningRate = p.learningRate; f.seed = 1
            f.responseLength = p.responseLength; f.sampling = SamplingSettings(temperature: p.temperature)
            return Plan(base: quick ? .quick() : .full(), rewardEpochs: 3, perPrompt: 6, ppo: p, dpo: d, grpo: g, sft: f)
        }
    }

    static func run(_ args: [String]) throws {
        let a = try Arguments(
            args, options: ["--run", "--lora-rank", "--frozen-dtype", PrecisionOption.name],
            flags: ["--quick", "--json", "--force", "--dpo", "--grpo", "--sft"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let quick = a.flag("--quick"), json = a.flag("--json"), withDPO = a.flag("--dpo"), withGRPO = a.flag("--grpo")
        let withSFT = a.flag("--sft")
        let runName = a.string("--run") ?? "demo"
        var plan = Plan.make(quick: quick)
        let lora = try a.int("--lora-rank", range: 1...4096).map { LoRAConfig(rank: $0, alpha: Float(2 * $0), targets: []) }
        let given = GivenOptions(values: a.options, flags: a.flags)
        let frozen = try LoRAOptions.frozenDType(given)
        // Every stage runs in it (each config carries it), and so does the closing measurement.
        let precision = try PrecisionOption.parse(given)
        plan.ppo.precision = precision
        plan.dpo.precision = precision
        plan.grpo.precision = precision
        plan.sft.precision = precision
        plan.sft.lexicon = URL(fileURLWithPath: plan.sft.lexicon).standardizedFileURL.path
        if let lora {
            plan.ppo.lora = lora
            plan.ppo.learningRate *= LoRAOptions.learningRateFactor
            plan.grpo.lora = lora
            plan.grpo.learningRate *= LoRAOptions.learningRateFactor
            if frozen == .bf16 { plan.ppo.frozenDType = .bf16; plan.grpo.frozenDType = .bf16 }
        }
        let say: (String) -> Void = json ? { printError($0) } : { print($0) }
        let start = Date()
        var stageStart = start
        var stageNumber = 0
        func header(_ title: String) {
            stageNumber += 1
            let n = stageNumber
            if n > 1 { say(String(format: "   (%.1fs)", Date().timeIntervalSince(stageStart))) }
            stageStart = Date()
            say("\n== \(n). \(title)")
        }
        _ = try DefaultBase.corpus()
        Interrupt.install()
        say("rlhf demo (run \(runName), precision \(precision.rawValue), kernels \(Kernels.activePath.rawValue)\(quick ? ", quick" : ""))")
        Kernels.precision = precision

        header("Base model")
        let (baseFolder, _) = try DefaultBase.ensure(plan.base) { say("   " + $0) }

        header("Init")
        let folder = RunStore.folder(forRun: runName)
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent(RunStore.databaseName).path) && !a.flag("--force") {
            let old = try RunStore(folder: folder)
            guard try old.meta("demo") == "1" else {
                throw RuntimeError(
                    "a run named \(runName) exists and was not made by the demo; pass --run with another name, or --force to replace it")
            }
            say("   replacing the earlier demo run at \(folder.path)")
        }
        try quietly { try InitCommand.run(["--run", runName, "--base", baseFolder.path, "--force"]) }
        let store = try RunStore(folder: folder)
        try store.setMeta("demo", "1")
        say("   run \(folder.path); base model registered as base, policy and reference")

        header("Bundled prompts")
        for (file, split) in [("prompts/train.jsonl", PromptSplit.train), ("prompts/eval.jsonl", .eval)] {
            let r = try store.addPrompts(
                try PromptFile.read(URL(fileURLWithPath: file)), split: split, source: URL(fileURLWithPath: file).lastPathComponent)
            say("   \(r.imported) \(split.rawValue) prompts from \(file)")
        }

        // The policy every later stage starts from: the base, or with --sft the SFT policy.
        var sftRun: (report: SFTReport, seconds: Double)?
        if withSFT {
            header("Rejection-sampling SFT (best of \(plan.sft.from.name.dropFirst(8)) under the lexicon labeler, \(plan.sft.epochs) epochs)")
            let sampleBar = LazyProgressBar("   best-of", unit: "prompts"), bar = LazyProgressBar("   sft", unit: "steps")
            var total = 0
            let r = try SFTStage.run(
                store: store, settings: plan.sft, resume: false,
                events: { e in
                    switch e {
                    case .sampling(let done, let n): sampleBar.update(done, of: n)
                    case .made(let made, let passed, _):
                        sampleBar.finish()
                        say("   \(made) demonstrations, the lexicon labeler's favourite of each prompt's samples (\(passed) prompts gave none)")
                    case .started(_, _, let steps, let train, let val, _, _):
                        total = steps
                        say("   \(train) training demonstrations, \(val) held out")
                    case .step(let step, let st, _, _): bar.update(step, of: total, note: String(format: "loss %.4f", st.loss))
                    case .epoch(let n, let v):
                        bar.finish()
                        say(String(format: "   epoch %d: validation loss %.4f, token accuracy %.1f%%", n, v.loss, v.meanTokenAccuracy * 100))
                    default: break
                    }
                }, shouldStop: { Interrupt.requested })
            try stopIfInterrupted()
            guard r.reference != nil else { throw RuntimeError("SFT registered no reference") }
            sftRun = (r, Date().timeIntervalSince(stageStart))
            say("   the SFT policy is now the run's policy and reference")
        }
        let startPolicy = try sftRun?.report.lastPolicy?.id ?? store.models().first { $0.role == .policy }?.id

        header("Generate")
        let gen = LazyProgressBar("   generate", unit: "completions")
        var g = GenerateConfig()
        g.seed = 1
        g.perPrompt = plan.perPrompt
        g.precision = precision
        let gr = try GenerateStage.run(store: store, options: g, progress: { gen.update($0, of: $1) }, shouldStop: { Interrupt.requested })
        gen.finish()
        try stopIfInterrupted()
        say("   \(gr.completions) completions (\(plan.perPrompt) per train prompt, up to 48 tokens, temperature 0.7)")

        header("Simulated labeling (lexicon, noise \(labelNoise))")
        let lexicon = try Lexicon(folder: URL(fileURLWithPath: "labels/lexicon"))
        let lab = LazyProgressBar("   label", unit: "items")
        let labeled = try SimulatedLabeler.run(
            store: store, rule: .lexicon(lexicon), noise: labelNoise, seed: 1, annotator: "sim-lexicon",
            order: .random, guidelinesVersion: nil, progress: { lab.update($0, of: $1) })
        lab.finish()
        say("   \(labeled) items ranked, \(try store.counts().comparisons) comparisons")

        header("Train the reward model" + (lora.map { " (LoRA rank \($0.rank))" } ?? ""))
        var ro = RewardConfig()
        ro.epochs = plan.rewardEpochs; ro.learningRate = 1e-4; ro.seed = 1; ro.precision = precision
        if let lora { ro.lora = lora; ro.learningRate *= LoRAOptions.learningRateFactor; ro.frozenDType = frozen }
        let rbar = LazyProgressBar("   train-reward", unit: "steps")
        let rr = try RewardStage.run(
            store: store, options: ro,
            progress: { s, t, l in
                rbar.update(s, of: t, note: String(format: "loss %.4f", l))
            }, shouldStop: { Interrupt.requested })
        rbar.finish()
        try stopIfInterrupted()
        let valAcc = rr.best?.validationAccuracy ?? .nan
        say(String(format: "   validation accuracy %.1f%% (best of %d epochs)", valAcc * 100, rr.epochs.count))

        header(
            "PPO \(withSFT ? "from the SFT policy " : "")(\(plan.ppo.iterations) iterations of \(plan.ppo.batch) prompts\(lora.map { ", LoRA rank \($0.rank)" } ?? ""))"
        )
        let pr = try PPOStage.run(
            store: store, settings: plan.ppo, resume: false,
            events: { e in
                if case .iteration(let it, let res) = e {
                    func m(_ k: String) -> Double { res.metric(k) ?? .nan }
                    say(
                        String(
                            format: "   iteration %2d/%d  score %6.3f  kl %6.3f  β %.4f  entropy %6.2f  %.1fs", it, plan.ppo.iterations,
                            m("objective/scores"), m("objective/kl"), m("objective/kl_coef"), m("objective/entropy"),
                            m("time/rollout_s") + m("time/update_s")))
                }
            }, shouldStop: { Interrupt.requested })
        try stopIfInterrupted()
        guard let ppoPolicy = pr.lastPolicy else { throw RuntimeError("PPO registered no policy") }
        let ppoSeconds = Date().timeIntervalSince(stageStart)

        var dpoRun: (report: DPOReport, seconds: Double)?
        if withDPO {
            header(
                "DPO from the \(withSFT ? "SFT" : "base") policy (\(plan.dpo.epochs) epochs, β \(plan.dpo.objective.beta), learning rate \(plan.dpo.learningRate))"
            )
            var d = plan.dpo
            d.policyModel = startPolicy
            let bar = LazyProgressBar("   dpo", unit: "steps")
            var total = 0
            let r = try DPOStage.run(
                store: store, options: d, resume: false,
                events: { e in
                    switch e {
                    case .started(_, _, let steps, let train, let val, let pairs):
                        total = steps
                        say("   \(train) training rankings, \(val) held out (the reward model's split), \(pairs) pairs")
                    case .step(let step, let st, _):
                        bar.update(step, of: total, note: String(format: "loss %.4f", st.loss))
                    case .epoch(let n, let v):
                        bar.finish()
                        say(String(format: "   epoch %d: validation accuracy %.1f%%, margin %.3f", n, v.accuracy * 100, v.margin))
                    default: break
                    }
                }, shouldStop: { Interrupt.requested })
            try stopIfInterrupted()
            dpoRun = (r, Date().timeIntervalSince(stageStart))
        }

        var grpoRun: (report: GRPOReport, seconds: Double)?
        if withGRPO {
            let g = plan.grpo
            header(
                "GRPO from the \(withSFT ? "SFT" : "base") policy (\(g.iterations) iterations of \(g.batch) prompts × \(g.group), \(g.loss.rawValue), β \(formatDefault(g.beta))"
                    + (lora.map { ", LoRA rank \($0.rank)" } ?? "") + ")")
            var settings = g
            settings.policyModel = startPolicy
            let r = try GRPOStage.run(
                store: store, settings: settings, resume: false,
                events: { e in
                    if case .iteration(let it, let res) = e {
                        func m(_ k: String) -> Double { res.metric(k) ?? .nan }
                        say(
                            String(
                                format: "   iteration %2d/%d  reward %6.3f  std %5.3f  entropy %6.2f  length %4.1f  %.1fs", it, g.iterations,
                                m("reward"), m("reward_std"), m("entropy"), m("completions/mean_length"),
                                m("time/generation_s") + m("time/scoring_s") + m("time/update_s")))
                    }
                }, shouldStop: { Interrupt.requested })
            try stopIfInterrupted()
            grpoRun = (r, Date().timeIntervalSince(stageStart))
        }

        header("Curves")
        let panels = try CurvesView.load(runs: [(runName, store)], stage: "ppo", metrics: ["objective/scores", "objective/kl", "objective/entropy"])
        let style = TerminalChart.Style.detect(isTTY: isatty(json ? 2 : 1) == 1)
        for line in CurvesView.render(panels, width: 78, panelHeight: 8, style: style, smooth: nil) { say(line) }

        header("Report")
        let reportURL = store.folder.appendingPathComponent("report.html")
        try AtomicFile.write(Data(HTMLReport.render(try ReportCommand.gather(store: store, runName: runName)).utf8), to: reportURL)
        say("   \(reportURL.path)")

        say(String(format: "   (%.1fs)", Date().timeIntervalSince(stageStart)))
        let dpoPolicy = dpoRun?.report.lastPolicy, grpoPolicy = grpoRun?.report.lastPolicy, sftPolicy = sftRun?.report.lastPolicy
        // Each policy's KL is to its own reference: the run's (the SFT policy with --sft) for the
        // stages after SFT, the base's for SFT itself.
        guard let reference = try store.latestModel(role: .reference), let baseReference = try store.models().first(where: { $0.role == .reference })
        else { throw RuntimeError("the demo run lost its reference") }
        let ev = try evaluate(
            store: store, lexicon: lexicon, settings: plan.ppo,
            policies: ([ppoPolicy.id] + [dpoPolicy, grpoPolicy].compactMap { $0?.id }).map { ($0, reference.id) }
                + (sftPolicy.map { [($0.id, baseReference.id)] } ?? []))
        let e = ev.results[0]
        // The methods beside PPO, in the order of ev.results.
        var others: [Method] = []
        let after = withSFT ? "SFT+" : ""
        if let (r, secs) = dpoRun, r.lastPolicy != nil {
            others.append(
                Method(name: after + "DPO", key: "dpo", result: ev.results[1], seconds: secs, accuracy: r.epochs.last?.stats.accuracy ?? .nan))
        }
        if let (r, secs) = grpoRun, r.lastPolicy != nil {
            others.append(Method(name: after + "GRPO", key: "grpo", result: ev.results[others.count + 1], seconds: secs, accuracy: nil))
        }
        if let (r, secs) = sftRun, r.lastPolicy != nil {
            others.append(Method(name: "SFT", key: "sft", result: ev.results[others.count + 1], seconds: secs, accuracy: nil))
        }
        let ppoName = after + "PPO"
        let seconds = Date().timeIntervalSince(start)
        let target = plan.ppo.targetKL ?? 0
        if json {
            var fields: [(String, String)] = [
                ("run", JSONText.quote(store.folder.path)), ("quick", quick ? "true" : "false"), ("precision", JSONText.quote(precision.rawValue)),
                ("seconds", jsonNumber(seconds.rounded())),
                ("eval_prompts", "\(ev.prompts)"), ("samples_per_prompt", "\(ev.perPrompt)"),
                ("lexicon_base", jsonNumber(ev.baseScore)), ("lexicon_final", jsonNumber(e.score)),
                ("preferred_final", jsonNumber(e.vsBase.preferred)), ("wins", "\(e.vsBase.wins)"), ("losses", "\(e.vsBase.losses)"),
                ("ties", "\(e.vsBase.ties)"),
                ("kl", jsonNumber(e.kl)), ("target_kl", jsonNumber(target)), ("reward_val_accuracy", jsonNumber(valAcc)),
                ("report", JSONText.quote(reportURL.path)),
            ]
            if !others.isEmpty { fields.append(("ppo_seconds", jsonNumber(ppoSeconds.rounded()))) }
            for m in others {
                let k = m.key
                fields += [
                    ("\(k)_seconds", jsonNumber(m.seconds.rounded())), ("\(k)_lexicon_final", jsonNumber(m.result.score)),
                    ("\(k)_preferred_final", jsonNumber(m.result.vsBase.preferred)), ("\(k)_kl", jsonNumber(m.result.kl)),
                ]
                if let acc = m.accuracy { fields.append(("\(k)_val_accuracy", jsonNumber(acc))) }
            }
            if let r = sftRun?.report { fields += [("sft_demonstrations", "\(r.made)"), ("sft_steps", "\(r.firstStep + r.stepsDone)")] }
            for (a, b) in headToHead(ppo: e, name: ppoName, others) {
                let h2h = HeadToHead.tally(a.result.lexicon, b.result.lexicon), ci = h2h.interval, k = "\(a.key)_vs_\(b.key)"
                fields += [
                    ("\(k)_wins", "\(h2h.wins)"), ("\(k)_losses", "\(h2h.losses)"), ("\(k)_ties", "\(h2h.ties)"),
                    ("\(k)_preferred", jsonNumber(h2h.preferred)), ("\(k)_ci_low", jsonNumber(ci.low)), ("\(k)_ci_high", jsonNumber(ci.high)),
                ]
            }
            print(jsonLine(fields))
        } else {
            if !others.isEmpty {
                // Base (with --sft), SFT, PPO, then the other methods.
                let sft = others.first { $0.key == "sft" }
                let shown =
                    (sft.map { [$0] } ?? []) + [Method(name: ppoName, key: "ppo", result: e, seconds: ppoSeconds, accuracy: valAcc)]
                    + others.filter { $0.key != "sft" }
                let columns = (withSFT ? ["base"] : []) + shown.map(\.name)
                let dash = withSFT ? ["—"] : []
                func row(_ label: String, _ cells: [String], _ note: String = "") {
                    print(
                        "   " + label.padding(toLength: 30, withPad: " ", startingAt: 0)
                            + cells.map { String(repeating: " ", count: max(0, 9 - $0.count)) + $0 }.joined() + (note.isEmpty ? "" : "   " + note))
                }
                func pct(_ x: Double) -> String { String(format: "%.1f%%", x * 100) }
                let all = shown.map(\.result)
                print("\n== Result, on the \(ev.prompts) eval prompts (\(ev.perPrompt) samples each from the base and each final policy)")
                row("", columns)
                row(
                    String(format: withSFT ? "mean lexicon score" : "mean lexicon score (base %.2f)", ev.baseScore),
                    (withSFT ? [String(format: "%.2f", ev.baseScore)] : []) + all.map { String(format: "%.2f", $0.score) })
                row("preferred to the base", dash + all.map { pct($0.vsBase.preferred) }, "lexicon labeler, pairs it decides")
                row(
                    withSFT ? "mean KL to its reference" : "mean KL to the reference", dash + all.map { String(format: "%.2f", $0.kl) },
                    (withSFT ? "SFT's: the base; the others': SFT; " : "") + String(format: "PPO's target %.1f", target))
                row(
                    "validation accuracy", dash + shown.map { $0.accuracy.map(pct) ?? "—" },
                    "reward model" + (others.contains { $0.key == "dpo" } ? "; DPO's implicit reward" : ""))
                row("time", dash + shown.map { String(format: "%.1fs", $0.seconds) })
                for (a, b) in headToHead(ppo: e, name: ppoName, others) {
                    let h2h = HeadToHead.tally(a.result.lexicon, b.result.lexicon), ci = h2h.interval
                    print(
                        String(
                            format:
                                "   head to head: the lexicon labeler prefers %@'s completion to %@'s in %.0f%% of decided pairs (95%% interval %.0f–%.0f%%; %d wins, %d losses, %d ties)",
                            a.name, b.name, h2h.preferred * 100, ci.low * 100, ci.high * 100, h2h.wins, h2h.losses, h2h.ties))
                }
            } else {
                print("\n== Result, on the \(ev.prompts) eval prompts (\(ev.perPrompt) samples each from the base and the final policy)")
                print(String(format: "   mean lexicon score        base %.2f → final %.2f", ev.baseScore, e.score))
                print(
                    String(
                        format: "   lexicon labeler prefers   the final policy in %.0f%% of head-to-head pairs (%d wins, %d losses, %d ties)",
                        e.vsBase.preferred * 100, e.vsBase.wins, e.vsBase.losses, e.vsBase.ties))
                print(String(format: "   mean KL to the reference  %.2f (target %.1f)", e.kl, target))
                print(String(format: "   reward model accuracy     %.1f%% on held-out prompts", valAcc * 100))
            }
            print("   finished in \(ProgressBar.duration(seconds))")
            let steps: [(String, String)] = [
                ("rlhf init --run mine --base default", ""),
                ("rlhf prompts add prompts/train.jsonl --run mine", ""),
                ("rlhf label --run mine --write", "write answers; then rlhf sft --run mine (the SFT step)"),
                ("rlhf generate --run mine", ""),
                ("rlhf label --run mine", "rank by keyboard; ? shows the keys"),
                ("rlhf train-reward --run mine", ""),
                ("rlhf ppo --run mine --lr 1e-4 --target-kl 6", ""),
                ("rlhf dpo --run mine --policy base --lr 1e-4", "or DPO on the same labels"),
                ("rlhf grpo --run mine --policy base --lr 1e-4", "or GRPO against the same reward model"),
                ("rlhf compare --run mine --a ID --b ID --judge reward", "two policies head to head (ids: rlhf status)"),
                ("rlhf curves --run mine,\(runName)", "yours beside the demo's"),
                ("rlhf report --run \(runName)", "this run, as a web page"),
            ]
            let width = steps.map(\.0.count).max()! + 3
            print("\nNow the human path, with your own rankings instead of the lexicon's:")
            for (command, note) in steps {
                print("  " + (note.isEmpty ? command : command.padding(toLength: width, withPad: " ", startingAt: 0) + "# " + note))
            }
        }
    }

    /// A method run beside PPO, for the closing table.
    struct Method {
        var name: String, key: String
        var result: PolicyResult
        var seconds: Double
        /// Its validation accuracy, where it has one (DPO's implicit reward).
        var accuracy: Double?
    }

    /// The pairs compared head to head: each method against PPO, PPO against SFT (the policy it
    /// started from), and GRPO against DPO.
    static func headToHead(ppo result: PolicyResult, name: String, _ others: [Method]) -> [(Method, Method)] {
        let ppo = Method(name: name, key: "ppo", result: result, seconds: 0)
        var out: [(Method, Method)] = []
        for m in others { out.append(m.key == "sft" ? (ppo, m) : (m, ppo)) }
        if let d = others.first(where: { $0.key == "dpo" }), let g = others.first(where: { $0.key == "grpo" }) { out.append((g, d)) }
        return out
    }

    /// How often the simulated labeler swaps adjacent places: a little, as a careful person would.
    static let labelNoise = 0.05

    static func stopIfInterrupted() throws {
        if Interrupt.requested { throw RuntimeError("interrupted; the run so far is kept") }
    }

    /// Runs `body` with its standard output silenced (its messages are replaced by the demo's).
    static func quietly(_ body: () throws -> Void) throws {
        fflush(stdout)
        let saved = dup(1)
        let null = open("/dev/null", O_WRONLY)
        dup2(null, 1); close(null)
        defer { fflush(stdout); dup2(saved, 1); close(saved) }
        try body()
    }

    /// One final policy on the eval prompts.
    struct PolicyResult {
        var score = 0.0
        /// Against the base policy's samples, as the lexicon labeler (noise 0) judges.
        var vsBase = Tally()
        var kl = 0.0
        /// The lexicon score of each sample.
        var lexicon: [Double] = []
    }

    /// The base policy against each of `policies` on the eval prompts: every model samples the
    /// same prompts with the same seed, so the i-th samples pair up.
    static func evaluate(store: RunStore, lexicon: Lexicon, settings: PPOConfig, policies: [(policy: Int64, reference: Int64)])
        throws -> (prompts: Int, perPrompt: Int, baseScore: Double, results: [PolicyResult])
    {
        guard let baseRec = try store.models().first(where: { $0.role == .policy }) else { throw RuntimeError("the demo run lost its models") }
        let load = store.loadModel
        var references: [Int64: PretrainedModel] = [:]
        for id in Set(policies.map(\.reference)) { references[id] = try load(store.requireModel(id: id)) }
        let perPrompt = 4
        let prompts = try store.prompts(split: .eval)
        func sample(_ m: PretrainedModel) throws -> [Sample] {
            try HeadToHead.sample(
                m, prompts: prompts, perPrompt: perPrompt, maxNewTokens: settings.responseLength,
                settings: SamplingSettings(temperature: settings.temperature), seed: 2024)
        }
        func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(max(1, x.count)) }
        let base = try sample(try load(baseRec)).map { Double(lexicon.score($0.text)) }
        let results = try policies.map { id, refId -> PolicyResult in
            guard let rec = try store.model(id: id) else { throw RuntimeError("the demo run lost model #\(id)") }
            let samples = try sample(try load(rec))
            var r = PolicyResult()
            r.lexicon = samples.map { Double(lexicon.score($0.text)) }
            r.score = mean(r.lexicon)
            r.vsBase = HeadToHead.tally(r.lexicon, base)
            // KL: Σ_t (log p_final − log p_ref) over each final sample, at the sampling temperature.
            r.kl = HeadToHead.meanKL(samples, reference: references[refId]!.model, temperature: settings.temperature)
            return r
        }
        return (prompts.count, perPrompt, mean(base), results)
    }
}
