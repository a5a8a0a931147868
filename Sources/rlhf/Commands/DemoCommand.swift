import Foundation
import TransformerCore
import RunStore
import Generation
import Labeling
import RewardTraining
import PPO
import Curves

/// `rlhf demo`: the whole loop on the built-in default, with a measured result.
enum DemoCommand: Command {
    static let name = "demo"
    static let summary = "Run the whole RLHF loop on the built-in base model and prompts"
    static let help = """
    Usage: rlhf demo [--run NAME] [--quick] [--json] [--force]

    Runs every stage with a simulated labeler in place of a person, and measures the result:
      1. base model: pretrained from prompts/corpus.txt on first use, then cached
      2. init the run (default name: demo)
      3. the bundled prompts (400 train, 120 eval)
      4. generate 6 completions per train prompt
      5. simulated labeling: the lexicon labeler (labels/lexicon) with a little noise (0.05)
      6. train-reward
      7. PPO
      8. the curves, in the terminal
      9. an HTML report
    Then, on the eval prompts, it compares samples of the base policy with samples of the final
    policy: the mean lexicon score, how often the lexicon labeler (noise 0) prefers the final
    policy's completion, the mean KL to the reference, and the reward model's accuracy.

    Run it from the project's folder. --quick uses a smaller base model and fewer iterations
    (about a minute); without it, a few minutes on 2 cores. An earlier demo run of the same name
    is replaced; any other run is kept unless --force.

    Options:
      --run NAME   the run (default: demo)
      --quick      the short version
      --json       print the closing figures as one JSON object (progress still goes to stderr)
      --force      replace a run of that name even if a demo did not create it
    """

    struct Plan {
        var base: DefaultBase.Recipe
        var rewardEpochs: Int
        var perPrompt: Int
        var ppo: PPOSettings
        static func make(quick: Bool) -> Plan {
            var p = PPOSettings()
            p.iterations = quick ? 8 : 24
            p.batch = 64
            p.learningRate = 1e-4
            p.klCoef = 0.1
            p.targetKL = 6
            p.klHorizon = 10_000
            p.saveEvery = quick ? 8 : 12
            p.seed = 1
            return Plan(base: quick ? .quick() : .full(), rewardEpochs: 3, perPrompt: 6, ppo: p)
        }
    }

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run"], flags: ["--quick", "--json", "--force"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let quick = a.flag("--quick"), json = a.flag("--json")
        let runName = a.string("--run") ?? "demo"
        let plan = Plan.make(quick: quick)
        let say: (String) -> Void = json ? { printError($0) } : { print($0) }
        let start = Date()
        var stageStart = start
        func header(_ n: Int, _ title: String) {
            if n > 1 { say(String(format: "   (%.1fs)", Date().timeIntervalSince(stageStart))) }
            stageStart = Date()
            say("\n== \(n). \(title)")
        }
        _ = try DefaultBase.corpus()
        Interrupt.install()

        header(1, "Base model")
        let (baseFolder, _) = try DefaultBase.ensure(plan.base) { say("   " + $0) }

        header(2, "Init")
        let folder = RunStore.folder(forRun: runName)
        if FileManager.default.fileExists(atPath: folder.appendingPathComponent(RunStore.databaseName).path) && !a.flag("--force") {
            let old = try RunStore(folder: folder)
            guard try old.meta("demo") == "1" else {
                throw RuntimeError("a run named \(runName) exists and was not made by the demo; pass --run with another name, or --force to replace it")
            }
            say("   replacing the earlier demo run at \(folder.path)")
        }
        try quietly { try InitCommand.run(["--run", runName, "--base", baseFolder.path, "--force"]) }
        let store = try RunStore(folder: folder)
        try store.setMeta("demo", "1")
        say("   run \(folder.path); base model registered as base, policy and reference")

        header(3, "Bundled prompts")
        for (file, split) in [("prompts/train.jsonl", PromptSplit.train), ("prompts/eval.jsonl", .eval)] {
            let r = try store.addPrompts(try PromptFile.read(URL(fileURLWithPath: file)), split: split, source: URL(fileURLWithPath: file).lastPathComponent)
            say("   \(r.imported) \(split.rawValue) prompts from \(file)")
        }

        header(4, "Generate")
        let gen = progressCallback("   generate", unit: "completions")
        var g = GenerateOptions()
        g.seed = 1
        g.perPrompt = plan.perPrompt
        let gr = try GenerateStage.run(store: store, options: g, progress: gen.update, shouldStop: { Interrupt.requested })
        gen.bar()?.finish()
        try stopIfInterrupted()
        say("   \(gr.completions) completions (\(plan.perPrompt) per train prompt, up to 48 tokens, temperature 0.7)")

        header(5, "Simulated labeling (lexicon, noise \(labelNoise))")
        let lexicon = try Lexicon(folder: URL(fileURLWithPath: "labels/lexicon"))
        let lab = progressCallback("   label", unit: "items")
        let labeled = try SimulatedLabeler.run(store: store, rule: .lexicon(lexicon), noise: labelNoise, seed: 1, annotator: "sim-lexicon",
                                               order: .random, guidelinesVersion: nil, progress: lab.update)
        lab.bar()?.finish()
        say("   \(labeled) items ranked, \(try store.counts().comparisons) comparisons")

        header(6, "Train the reward model")
        var ro = RewardOptions()
        ro.epochs = plan.rewardEpochs; ro.learningRate = 1e-4; ro.seed = 1
        var rbar: ProgressBar?
        let rr = try RewardStage.run(store: store, options: ro, progress: { s, t, l in
            if rbar == nil { rbar = ProgressBar("   train-reward", total: t, unit: "steps") }
            rbar!.update(s, note: String(format: "loss %.4f", l))
        }, shouldStop: { Interrupt.requested })
        rbar?.finish()
        try stopIfInterrupted()
        let valAcc = rr.best?.validationAccuracy ?? .nan
        say(String(format: "   validation accuracy %.1f%% (best of %d epochs)", valAcc * 100, rr.epochs.count))

        header(7, "PPO (\(plan.ppo.iterations) iterations of \(plan.ppo.batch) prompts)")
        let pr = try PPOStage.run(store: store, settings: plan.ppo, resume: false, events: { e in
            if case .iteration(let it, let res) = e {
                func m(_ k: String) -> Double { res.metric(k) ?? .nan }
                say(String(format: "   iteration %2d/%d  score %6.3f  kl %6.3f  β %.4f  entropy %6.2f  %.1fs", it, plan.ppo.iterations,
                           m("objective/scores"), m("objective/kl"), m("objective/kl_coef"), m("objective/entropy"),
                           m("time/rollout_s") + m("time/update_s")))
            }
        }, shouldStop: { Interrupt.requested })
        try stopIfInterrupted()
        _ = pr

        header(8, "Curves")
        let panels = try CurvesView.load(runs: [(runName, store)], stage: "ppo", metrics: ["objective/scores", "objective/kl", "objective/entropy"])
        let style = TerminalChart.Style.detect(isTTY: isatty(json ? 2 : 1) == 1)
        for line in CurvesView.render(panels, width: 78, panelHeight: 8, style: style, smooth: nil) { say(line) }

        header(9, "Report")
        let reportURL = store.folder.appendingPathComponent("report.html")
        try AtomicFile.write(Data(HTMLReport.render(try ReportCommand.gather(store: store, runName: runName)).utf8), to: reportURL)
        say("   \(reportURL.path)")

        say(String(format: "   (%.1fs)", Date().timeIntervalSince(stageStart)))
        let e = try evaluate(store: store, lexicon: lexicon, settings: plan.ppo)
        let seconds = Date().timeIntervalSince(start)
        let target = plan.ppo.targetKL ?? 0
        if json {
            print(jsonLine([("run", JSONText.quote(store.folder.path)), ("quick", quick ? "true" : "false"), ("seconds", jsonNumber(seconds.rounded())),
                            ("eval_prompts", "\(e.prompts)"), ("samples_per_prompt", "\(e.perPrompt)"),
                            ("lexicon_base", jsonNumber(e.baseScore)), ("lexicon_final", jsonNumber(e.finalScore)),
                            ("preferred_final", jsonNumber(e.winRate)), ("wins", "\(e.wins)"), ("losses", "\(e.losses)"), ("ties", "\(e.ties)"),
                            ("kl", jsonNumber(e.kl)), ("target_kl", jsonNumber(target)), ("reward_val_accuracy", jsonNumber(valAcc)),
                            ("report", JSONText.quote(reportURL.path))]))
        } else {
            print("\n== Result, on the \(e.prompts) eval prompts (\(e.perPrompt) samples each from the base and the final policy)")
            print(String(format: "   mean lexicon score        base %.2f → final %.2f", e.baseScore, e.finalScore))
            print(String(format: "   lexicon labeler prefers   the final policy in %.0f%% of head-to-head pairs (%d wins, %d losses, %d ties)",
                         e.winRate * 100, e.wins, e.losses, e.ties))
            print(String(format: "   mean KL to the reference  %.2f (target %.1f)", e.kl, target))
            print(String(format: "   reward model accuracy     %.1f%% on held-out prompts", valAcc * 100))
            print("   finished in \(ProgressBar.duration(seconds))")
            let steps: [(String, String)] = [
                ("rlhf init --run mine --base default", ""),
                ("rlhf prompts add prompts/train.jsonl --run mine", ""),
                ("rlhf generate --run mine", ""),
                ("rlhf label --run mine", "rank by keyboard; ? shows the keys"),
                ("rlhf train-reward --run mine", ""),
                ("rlhf ppo --run mine --lr 1e-4 --target-kl 6", ""),
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

    struct Evaluation {
        var prompts = 0, perPrompt = 0
        var baseScore = 0.0, finalScore = 0.0
        var wins = 0, losses = 0, ties = 0
        var kl = 0.0
        var winRate: Double { wins + losses > 0 ? Double(wins) / Double(wins + losses) : 0 }
    }

    /// Base policy against final policy on the eval prompts.
    static func evaluate(store: RunStore, lexicon: Lexicon, settings: PPOSettings) throws -> Evaluation {
        let models = try store.models()
        guard let baseRec = models.first(where: { $0.role == .policy }), let finalRec = try store.latestModel(role: .policy),
              let refRec = try store.latestModel(role: .reference) else { throw RuntimeError("the demo run lost its models") }
        let base = try ModelFolder.load(store.verifiedFolder(baseRec, sha256: SHA256.hex(of:)))
        let final = try ModelFolder.load(store.verifiedFolder(finalRec, sha256: SHA256.hex(of:)))
        let ref = try ModelFolder.load(store.verifiedFolder(refRec, sha256: SHA256.hex(of:)))
        let tok = final.tokenizer, eos = tok.eosId!
        let perPrompt = 4
        let prompts = try store.prompts(split: .eval).map { tok.encode(final.annotations.format(prompt: $0.text), allowSpecial: false) }
        let inputs = prompts.flatMap { Array(repeating: $0, count: perPrompt) }
        let sampling = SamplingSettings(temperature: settings.temperature)
        func sample(_ m: GPTModel) -> [Generation] {
            var rng = SeededRandom(seed: 2024)
            var out: [Generation] = []
            for start in stride(from: 0, to: inputs.count, by: 64) {
                out += Generator(model: m).generate(prompts: Array(inputs[start..<min(start + 64, inputs.count)]), maxNewTokens: settings.responseLength,
                                                    settings: sampling, eos: eos, pad: tok.padId ?? eos, rng: &rng)
            }
            return out
        }
        let b = sample(base.model), f = sample(final.model)
        func text(_ g: Generation) -> String { tok.decode(g.finishReason == .eos ? Array(g.tokens.dropLast()) : g.tokens) }
        var e = Evaluation(prompts: prompts.count, perPrompt: perPrompt)
        let bs = b.map { lexicon.score(text($0)) }, fs = f.map { lexicon.score(text($0)) }
        e.baseScore = Double(bs.reduce(0, +)) / Double(bs.count)
        e.finalScore = Double(fs.reduce(0, +)) / Double(fs.count)
        for (x, y) in zip(fs, bs) { if x > y { e.wins += 1 } else if x < y { e.losses += 1 } else { e.ties += 1 } }
        // KL: Σ_t (log p_final − log p_ref) over each final sample, at the sampling temperature.
        let refModel = ref.model
        var klSum = 0.0
        for (i, g) in f.enumerated() where !g.tokens.isEmpty {
            let seq = inputs[i] + g.tokens
            let acts = GPTActivations(config: refModel.config, batch: 1, length: seq.count)
            refModel.forward(TokenBatch(tokens: seq, batch: 1, length: seq.count), acts)
            var targets = [Int32](repeating: -1, count: seq.count)
            for j in 0..<g.tokens.count { targets[inputs[i].count + j - 1] = g.tokens[j] }
            let lp = LogitHeads.targetLogProbs(acts, targets: targets, temperature: settings.temperature)
            for j in 0..<g.tokens.count { klSum += Double(g.logProbs[j] - lp[inputs[i].count + j - 1]) }
        }
        e.kl = klSum / Double(f.count)
        return e
    }
}
