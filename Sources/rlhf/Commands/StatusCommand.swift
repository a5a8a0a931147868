import Foundation
import RunStore
import StageKit
import TransformerCore

/// `rlhf status`: what a run holds.
enum StatusCommand: Command {
    static let name = "status"
    static let summary = "Show what a run holds: prompts, completions, labels, models, stage runs"
    static let help = """
        Usage: rlhf status [--run NAME] [--json] [--check]

        Prints the counts of a run: prompts by split, completions, rankings (and skips and flags),
        comparisons, models by role, and stage runs by status; the base model's Hugging Face Hub
        repository and exact commit when it came from the Hub; the current policy and reference
        (the model PPO, DPO and GRPO measure their KL to; after 'rlhf sft', the SFT policy), each
        with where it came from; the latest reward-model validation accuracy, the latest PPO and
        GRPO iterations' key metrics and the latest DPO validation figures once those stages have
        run; the results of human judging (rlhf compare --judge human: the first model's wins,
        losses, ties, skips and win rate with its 95% Wilson interval, and the annotators'
        agreement). Stage runs whose process died are shown as interrupted.

        --check verifies the run instead: SQLite's integrity check of run.sqlite, and every
        registered checkpoint (inside the run folder, its model.safetensors present, with the SHA-256
        it was registered with). It prints one line per problem and exits 1 if there is any.

        Options:
          --run NAME   the run (default: default)
          --json       one JSON object
          --check      verify the database and every registered checkpoint
        """

    static let ppoKeys = ["objective/scores", "objective/kl", "objective/kl_coef", "objective/entropy", "policy/clipfrac"]
    static let dpoKeys = ["eval_rewards/accuracies", "eval_rewards/margins", "eval_loss"]
    static let grpoKeys = ["reward", "reward_std", "kl", "entropy", "completions/mean_length", "clip_ratio/region_mean"]

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run"], flags: ["--json", "--check"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let store = try openRun(a)
        try store.markInterruptedRuns()
        if a.flag("--check") { return try check(store, json: a.flag("--json")) }
        let c = try store.counts()
        let policy = try store.latestModel(role: .policy)
        // The registered (best) epoch of the latest reward training, else its latest epoch.
        var valAcc = try store.latestMetric(stage: "train-reward", name: "reward/val_accuracy")
        if let best = try store.latestMetric(stage: "train-reward", name: "reward/best_epoch"), best.value.isFinite,
            let v = try store.metric(stage: "train-reward", name: "reward/val_accuracy", step: Int(best.value))
        {
            valAcc = (Int(best.value), v)
        }
        var ppo: [(String, Int, Double)] = []
        for k in ppoKeys { if let m = try store.latestMetric(stage: "ppo", name: k) { ppo.append((k, m.step, m.value)) } }
        var dpo: [(String, Int, Double)] = []
        for k in dpoKeys { if let m = try store.latestMetric(stage: "dpo", name: k) { dpo.append((k, m.step, m.value)) } }
        // The latest GRPO run's last iteration (kl only where that run logged it).
        var grpo: [(String, Int, Double)] = []
        if let g = try store.stageRuns(stage: "grpo").first(where: { try store.hasMetrics(stageRunId: $0.id) }) {
            let points = try store.metrics(stageRunId: g.id, names: grpoKeys)
            let last = points.map(\.step).max()!
            for k in grpoKeys { if let p = points.first(where: { $0.name == k && $0.step == last }) { grpo.append((k, last, p.value)) } }
        }
        let lastRuns = try store.stageRuns().prefix(5)
        let judged = try JudgmentSummary.all(store)

        if a.flag("--json") {
            func obj(_ d: [String: Int]) -> String {
                "{" + d.sorted { $0.key < $1.key }.map { "\(JSONText.quote($0.key)):\($0.value)" }.joined(separator: ",") + "}"
            }
            var prompts = c.promptsBySplit
            for s in PromptSplit.allCases where prompts[s.rawValue] == nil { prompts[s.rawValue] = 0 }
            var rankings = c.rankingsByStatus
            rankings["total"] = c.rankings
            print(
                jsonLine([
                    ("run", JSONText.quote(store.folder.path)),
                    ("schema_version", "\(store.schemaVersion)"),
                    ("prompts", obj(prompts)),
                    ("completions", "\(c.completions)"),
                    ("rankings", obj(rankings)),
                    ("comparisons", "\(c.comparisons)"),
                    ("models", obj(c.modelsByRole)),
                    ("base_origin", try originJSON(store)),
                    ("stage_runs", obj(c.stageRunsByStatus)),
                    (
                        "policy",
                        policy.map { jsonLine([("id", "\($0.id)"), ("path", JSONText.quote($0.path)), ("sha256", JSONText.quote($0.sha256))]) }
                            ?? "null"
                    ),
                    ("reference", try referenceJSON(store: store)),
                    ("reward", valAcc.map { jsonLine([("val_accuracy", jsonNumber($0.value)), ("step", "\($0.step)")]) } ?? "null"),
                    ("ppo", ppo.isEmpty ? "null" : jsonLine([("iteration", "\(ppo.map(\.1).max()!)")] + ppo.map { ($0.0, jsonNumber($0.2)) })),
                    ("dpo", dpo.isEmpty ? "null" : jsonLine([("step", "\(dpo.map(\.1).max()!)")] + dpo.map { ($0.0, jsonNumber($0.2)) })),
                    ("grpo", grpo.isEmpty ? "null" : jsonLine([("iteration", "\(grpo.map(\.1).max()!)")] + grpo.map { ($0.0, jsonNumber($0.2)) })),
                    ("judgments", "[" + judged.map(JudgmentSummary.json).joined(separator: ",") + "]"),
                ]))
            return
        }
        print("run \(store.folder.path) (schema \(store.schemaVersion))")
        print("  prompts      \(c.promptsBySplit["train"] ?? 0) train, \(c.promptsBySplit["eval"] ?? 0) eval")
        print("  completions  \(c.completions)")
        print(
            "  rankings     \(c.rankings)"
                + (c.rankings > 0
                    ? " (\(c.rankingsByStatus["ranked"] ?? 0) ranked, \(c.rankingsByStatus["skipped"] ?? 0) skipped, \(c.rankingsByStatus["flagged"] ?? 0) flagged)"
                    : ""))
        print("  comparisons  \(c.comparisons)")
        print(
            "  models       "
                + ModelRole.allCases.compactMap { r in c.modelsByRole[r.rawValue].map { "\($0) \(r.rawValue)" } }.joined(separator: ", "))
        if let line = try originLine(store) { print(line) }
        for line in try modelLines(store: store) { print(line) }
        print(
            "  stage runs   "
                + StageStatus.allCases.compactMap { s in c.stageRunsByStatus[s.rawValue].map { "\($0) \(s.rawValue)" } }.joined(separator: ", "))
        if let v = valAcc { print(String(format: "  reward model validation accuracy %.3f (epoch %d)", v.value, v.step)) }
        if let r = try store.latestModel(role: .reward) { print("  reward model #\(r.id) \(r.path)" + (r.note.map { " — \($0)" } ?? "")) }
        if !ppo.isEmpty {
            print("  PPO iteration \(ppo.map(\.1).max()!): " + ppo.map { "\($0.0) \(String(format: "%.4g", $0.2))" }.joined(separator: ", "))
        }
        if !grpo.isEmpty {
            print("  GRPO iteration \(grpo.map(\.1).max()!): " + grpo.map { "\($0.0) \(String(format: "%.4g", $0.2))" }.joined(separator: ", "))
        }
        if !dpo.isEmpty {
            print("  DPO validation at step \(dpo.map(\.1).max()!): " + dpo.map { "\($0.0) \(String(format: "%.4g", $0.2))" }.joined(separator: ", "))
        }
        for r in judged { JudgmentSummary.lines(r, indent: "  ").forEach { print($0) } }
        if !lastRuns.isEmpty {
            print("  recent stage runs:")
            for r in lastRuns {
                let when = Date(timeIntervalSince1970: r.startedAt)
                let f = DateFormatter(); f.dateFormat = "yyyy-MM-dd HH:mm:ss"
                print(
                    "    #\(r.id) \(r.stage.padding(toLength: 12, withPad: " ", startingAt: 0)) \(r.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)) \(f.string(from: when))"
                        + (r.error.map { " — " + TerminalSafe.escape($0, keepNewlines: false) } ?? ""))
            }
        }
    }

    private static func live(_ n: Int) -> String { n == 0 ? "" : "; \(n) stage run\(n == 1 ? " is" : "s are") still running" }

    /// `--check`: the database's integrity and every registered checkpoint's.
    static func check(_ store: RunStore, json: Bool) throws {
        var problems: [String] = []
        let integrity = try store.integrityCheck()
        if integrity != ["ok"] { problems += integrity.prefix(20).map { "run.sqlite: \($0)" } }
        let models = try store.models()
        for m in models {
            do { _ = try store.verifiedFolder(m) } catch { problems.append("\(error)") }
        }
        let running = try store.stageRuns().filter { $0.status == .running }
        if json {
            print(
                jsonLine([
                    ("ok", problems.isEmpty ? "true" : "false"), ("integrity", JSONText.quote(integrity.first ?? "")),
                    ("checkpoints", "\(models.count)"), ("running_stage_runs", "\(running.count)"),
                    ("problems", "[" + problems.map(JSONText.quote).joined(separator: ",") + "]"),
                ]))
        } else {
            for p in problems { print("problem: " + TerminalSafe.escape(p, keepNewlines: false)) }
            let live = live(running.count)
            if problems.isEmpty {
                print("check ok: database integrity ok, \(models.count) registered checkpoint\(models.count == 1 ? "" : "s") verified\(live)")
            }
        }
        if !problems.isEmpty {
            throw RuntimeError("the run failed its check: \(problems.count) problem\(problems.count == 1 ? "" : "s")\(live(running.count))")
        }
    }
}
