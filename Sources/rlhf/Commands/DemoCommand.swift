import Compare
import Curves
import DPO
import Foundation
import Generation
import Labeling
import PPO
import RewardTraining
import RunStore
import StageKit
import TransformerCore

/// `rlhf demo`: the whole loop on the built-in default, with a measured result.
enum DemoCommand: Command {
    static let name = "demo"
    static let summary = "Run the whole RLHF loop on the built-in base model and prompts"
    static let help = """
        Usage: rlhf demo [--run NAME] [--quick] [--dpo] [--lora-rank R [--frozen-dtype bf16]] [--precision f32|bf16]
                         [--json] [--force]

        Runs every stage with a simulated labeler in place of a person, and measures the result:
          1. base model: pretrained from prompts/corpus.txt on first use, then cached
          2. init the run (default name: demo)
          3. the bundled prompts (400 train, 120 eval)
          4. generate 6 completions per train prompt
          5. simulated labeling: the lexicon labeler (labels/lexicon) with a little noise (0.05)
          6. train-reward
          7. PPO
          8. with --dpo: DPO from the base policy on the same labels (3 epochs, the PPO learning rate)
          9. the curves, in the terminal
         10. an HTML report
        Then, on the eval prompts, it compares samples of the base policy with samples of the final
        policy: the mean lexicon score, how often the lexicon labeler (noise 0) prefers the final
        policy's completion, the mean KL to the reference, and the reward model's accuracy. With
        --dpo it does the same for the DPO policy and puts both rows side by side, with PPO and DPO
        head to head under the lexicon labeler.

        Run it from the project's folder. --quick uses a smaller base model and fewer iterations
        (about a minute); without it, a few minutes on 2 cores. An earlier demo run of the same name
        is replaced; any other run is kept unless --force.

        Options:
          --run NAME   the run (default: demo)
          --quick      the short version
          --dpo        also run DPO beside PPO, and compare them
          --lora-rank R  train the reward model and PPO with rank-R LoRA adapters (alpha 2R, every
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
            return Plan(base: quick ? .quick() : .full(), rewardEpochs: 3, perPrompt: 6, ppo: p, dpo: d)
        }
    }

    static func run(_ args: [String]) throws {
        let a = try Arguments(
            args, options: ["--run", "--lora-rank", "--frozen-dtype", PrecisionOption.name], flags: ["--quick", "--json", "--force", "--dpo"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let quick = a.flag("--quick"), json = a.flag("--json"), withDPO = a.flag("--dpo")
        let runName = a.string("--run") ?? "demo"
        var plan = Plan.make(quick: quick)
        let lora = try a.int("--lora-rank", range: 1...4096).map { LoRAConfig(rank: $0, alpha: Float(2 * $0), targets: []) }
        let given = GivenOptions(values: a.options, flags: a.flags)
        let frozen = try LoRAOptions.frozenDType(given)
        // Every stage runs in it (each config carries it), and so does the closing measurement.
        let precision = try PrecisionOption.parse(given)
        plan.ppo.precision = precision
        plan.dpo.precision = precision
        if let lora {
            plan.ppo.lora = lora
            plan.ppo.learningRate *= LoRAOptions.learningRateFactor
            if frozen == .bf16 { plan.ppo.frozenDType = .bf16 }
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

        header("PPO (\(plan.ppo.iterations) iterations of \(plan.ppo.batch) prompts\(lora.map { ", LoRA rank \($0.rank)" } ?? ""))")
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
            header("DPO from the base policy (\(plan.dpo.epochs) epochs, β \(plan.dpo.objective.beta), learning rate \(plan.dpo.learningRate))")
            var d = plan.dpo
            d.policyModel = try store.models().first { $0.role == .policy }?.id
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

        header("Curves")
        let panels = try CurvesView.load(runs: [(runName, store)], stage: "ppo", metrics: ["objective/scores", "objective/kl", "objective/entropy"])
        let style = TerminalChart.Style.detect(isTTY: isatty(json ? 2 : 1) == 1)
        for line in CurvesView.render(panels, width: 78, panelHeight: 8, style: style, smooth: nil) { say(line) }

        header("Report")
        let reportURL = store.folder.appendingPathComponent("report.html")
        try AtomicFile.write(Data(HTMLReport.render(try ReportCommand.gather(store: store, runName: runName)).utf8), to: reportURL)
        say("   \(reportURL.path)")

        say(String(format: "   (%.1fs)", Date().timeIntervalSince(stageStart)))
        let dpoPolicy = dpoRun?.report.lastPolicy
        let ev = try evaluate(store: store, lexicon: lexicon, settings: plan.ppo, policies: [ppoPolicy.id] + (dpoPolicy.map { [$0.id] } ?? []))
        let e = ev.results[0]
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
            if let (r, secs) = dpoRun, ev.results.count > 1 {
                let dr = ev.results[1], h2h = HeadToHead.tally(dr.lexicon, e.lexicon), ci = h2h.interval
                fields += [
                    ("ppo_seconds", jsonNumber(ppoSeconds.rounded())), ("dpo_seconds", jsonNumber(secs.rounded())),
                    ("dpo_lexicon_final", jsonNumber(dr.score)), ("dpo_preferred_final", jsonNumber(dr.vsBase.preferred)),
                    ("dpo_kl", jsonNumber(dr.kl)), ("dpo_val_accuracy", jsonNumber(r.epochs.last?.stats.accuracy ?? .nan)),
                    ("dpo_vs_ppo_wins", "\(h2h.wins)"), ("dpo_vs_ppo_losses", "\(h2h.losses)"), ("dpo_vs_ppo_ties", "\(h2h.ties)"),
                    ("dpo_vs_ppo_preferred", jsonNumber(h2h.preferred)), ("dpo_vs_ppo_ci_low", jsonNumber(ci.low)),
                    ("dpo_vs_ppo_ci_high", jsonNumber(ci.high)),
                ]
            }
            print(jsonLine(fields))
        } else {
            if let (r, secs) = dpoRun, ev.results.count > 1 {
                let dr = ev.results[1], h2h = HeadToHead.tally(dr.lexicon, e.lexicon), ci = h2h.interval
                func row(_ label: String, _ a: String, _ b: String, _ note: String = "") {
                    print(
                        "   " + label.padding(toLength: 30, withPad: " ", startingAt: 0) + String(repeating: " ", count: max(0, 8 - a.count)) + a
                            + String(repeating: " ", count: max(0, 10 - b.count)) + b + (note.isEmpty ? "" : "   " + note))
                }
                func pct(_ x: Double) -> String { String(format: "%.1f%%", x * 100) }
                print("\n== Result, on the \(ev.prompts) eval prompts (\(ev.perPrompt) samples each from the base and each final policy)")
                row("", "PPO", "DPO")
                row(String(format: "mean lexicon score (base %.2f)", ev.baseScore), String(format: "%.2f", e.score), String(format: "%.2f", dr.score))
                row("preferred to the base", pct(e.vsBase.preferred), pct(dr.vsBase.preferred), "lexicon labeler, pairs it decides")
                row(
                    "mean KL to the reference", String(format: "%.2f", e.kl), String(format: "%.2f", dr.kl),
                    String(format: "PPO's target %.1f", target))
                row("validation accuracy", pct(valAcc), pct(r.epochs.last?.stats.accuracy ?? .nan), "reward model; DPO's implicit reward")
                row("time", String(format: "%.1fs", ppoSeconds), String(format: "%.1fs", secs))
                print(
                    String(
                        format:
                            "   head to head: the lexicon labeler prefers DPO's completion in %.0f%% of decided pairs (95%% interval %.0f–%.0f%%; %d wins, %d losses, %d ties)",
                        h2h.preferred * 100, ci.low * 100, ci.high * 100, h2h.wins, h2h.losses, h2h.ties))
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
                ("rlhf generate --run mine", ""),
                ("rlhf label --run mine", "rank by keyboard; ? shows the keys"),
                ("rlhf train-reward --run mine", ""),
                ("rlhf ppo --run mine --lr 1e-4 --target-kl 6", ""),
                ("rlhf dpo --run mine --policy base --lr 1e-4", "or DPO on the same labels"),
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
    static func evaluate(store: RunStore, lexicon: Lexicon, settings: PPOConfig, policies: [Int64])
        throws -> (prompts: Int, perPrompt: Int, baseScore: Double, results: [PolicyResult])
    {
        guard let baseRec = try store.models().first(where: { $0.role == .policy }), let refRec = try store.latestModel(role: .reference) else {
            throw RuntimeError("the demo run lost its models")
        }
        let load = store.loadModel
        let ref = try load(refRec)
        let perPrompt = 4
        let prompts = try store.prompts(split: .eval)
        func sample(_ m: PretrainedModel) throws -> [Sample] {
            try HeadToHead.sample(
                m, prompts: prompts, perPrompt: perPrompt, maxNewTokens: settings.responseLength,
                settings: SamplingSettings(temperature: settings.temperature), seed: 2024)
        }
        func mean(_ x: [Double]) -> Double { x.reduce(0, +) / Double(max(1, x.count)) }
        let base = try sample(try load(baseRec)).map { Double(lexicon.score($0.text)) }
        let results = try policies.map { id -> PolicyResult in
            guard let rec = try store.model(id: id) else { throw RuntimeError("the demo run lost model #\(id)") }
            let samples = try sample(try load(rec))
            var r = PolicyResult()
            r.lexicon = samples.map { Double(lexicon.score($0.text)) }
            r.score = mean(r.lexicon)
            r.vsBase = HeadToHead.tally(r.lexicon, base)
            // KL: Σ_t (log p_final − log p_ref) over each final sample, at the sampling temperature.
            r.kl = HeadToHead.meanKL(samples, reference: ref.model, temperature: settings.temperature)
            return r
        }
        return (prompts.count, perPrompt, mean(base), results)
    }
}
