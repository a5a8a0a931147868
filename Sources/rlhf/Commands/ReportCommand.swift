import Curves
import Foundation
import Labeling
import RunStore
import TransformerCore

/// `rlhf report`: one self-contained HTML page about a run.
enum ReportCommand: Command {
    static let name = "report"
    static let summary = "Write a self-contained HTML report of a run"
    static let help = """
        Usage: rlhf report [--run NAME] [-o FILE.html]

        One HTML page with no external assets: the run summary (counts), the models and their
        lineage, the stage runs with their configs, label counts and agreement, the reward model's
        accuracy per epoch with its curves, the PPO curves, the DPO validation figures per epoch
        with its curves, the GRPO curves with the completions it kept and their rewards, the results
        of human judging (rlhf compare --judge human), and a few sample completions with their
        scores for each PPO iteration.
        Default output: runs/NAME/report.html.
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "-o"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let store = try openRun(a)
        let runName = a.string("--run") ?? "default"
        let html = HTMLReport.render(try gather(store: store, runName: runName))
        let out = URL(fileURLWithPath: a.string("-o") ?? store.folder.appendingPathComponent("report.html").path)
        try AtomicFile.write(Data(html.utf8), to: out)
        print("wrote \(out.path)")
    }

    static func gather(store: RunStore, runName: String) throws -> ReportData {
        let c = try store.counts()
        var d = ReportData(runName: runName)
        d.counts =
            [
                ("train prompts", "\(c.promptsBySplit["train"] ?? 0)"), ("eval prompts", "\(c.promptsBySplit["eval"] ?? 0)"),
                ("completions", "\(c.completions)"), ("rankings", "\(c.rankings)"), ("comparisons", "\(c.comparisons)"),
            ]
            + ModelRole.allCases.compactMap { r in c.modelsByRole[r.rawValue].map { ("\(r.rawValue) models", "\($0)") } }
        d.models = try store.models().map {
            .init(id: $0.id, role: $0.role.rawValue, path: $0.path, parent: $0.parentId, step: $0.step, note: $0.note, sha: $0.sha256)
        }
        d.stages = try store.stageRuns().reversed().map {
            .init(
                id: $0.id, stage: $0.stage, status: $0.status.rawValue, started: $0.startedAt,
                finished: $0.finishedAt, config: $0.config, error: $0.error)
        }
        let s = LabelsIO.stats(try store.rankings().map(\.ranking))
        d.labels = [
            (
                "ranked, skipped, flagged",
                "\(c.rankingsByStatus["ranked"] ?? 0), \(c.rankingsByStatus["skipped"] ?? 0), \(c.rankingsByStatus["flagged"] ?? 0)"
            ),
            ("items ranked by 2+ annotators", "\(s.sharedItems)"),
            ("pairwise agreement", s.pairwiseAgreement.map { String(format: "%.1f%%", $0 * 100) } ?? "—"),
            ("Kendall's tau-b", s.kendallTau.map { String(format: "%.3f", $0) } ?? "—"),
            (
                "shown first and ranked best",
                s.rankedCount > 0 ? String(format: "%.1f%% (chance %.1f%%)", s.firstShownBestRate * 100, s.chanceFirstBest * 100) : "—"
            ),
        ]
        d.annotators = s.annotators.map {
            [
                $0.annotator, "\($0.count)", String(format: "%.1f%%", $0.skipRate * 100), String(format: "%.1f%%", $0.flagRate * 100),
                String(format: "%.1f", $0.medianSeconds),
            ]
        }
        if let rid = try store.series(stage: "reward", metrics: ["reward/val_loss"], runName: runName).stageRunId {
            let ms = try store.metrics(stageRunId: rid, names: ["reward/val_loss", "reward/val_accuracy", "reward/val_margin"])
            let byEpoch = Dictionary(grouping: ms, by: \.step)
            d.rewardEpochs = byEpoch.keys.sorted().map { e in
                let v = Dictionary(byEpoch[e]!.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                return [
                    "\(e)", String(format: "%.4f", v["reward/val_loss"] ?? .nan), String(format: "%.1f%%", (v["reward/val_accuracy"] ?? .nan) * 100),
                    String(format: "%.3f", v["reward/val_margin"] ?? .nan),
                ]
            }
            let panels = try CurvesView.load(runs: [(runName, store)], stage: "reward", metrics: CurveDefaults.reward)
            d.rewardCharts = SVGChart.document(title: "reward model", panels: panels)
        }
        if let did = try store.series(stage: "dpo", metrics: ["loss"], runName: runName).stageRunId {
            let names = ["eval_loss", "eval_rewards/accuracies", "eval_rewards/margins", "eval_rewards/chosen", "eval_rewards/rejected", "epoch"]
            let byStep = Dictionary(grouping: try store.metrics(stageRunId: did, names: names), by: \.step)
            d.dpoEpochs = byStep.keys.sorted().compactMap { step in
                let v = Dictionary(byStep[step]!.map { ($0.name, $0.value) }, uniquingKeysWith: { a, _ in a })
                guard let loss = v["eval_loss"] else { return nil }
                return [
                    String(format: "%.0f", v["epoch"] ?? .nan), "\(step)", String(format: "%.4f", loss),
                    String(format: "%.1f%%", (v["eval_rewards/accuracies"] ?? .nan) * 100), String(format: "%.3f", v["eval_rewards/margins"] ?? .nan),
                    String(format: "%.3f", v["eval_rewards/chosen"] ?? .nan), String(format: "%.3f", v["eval_rewards/rejected"] ?? .nan),
                ]
            }
            let panels = try CurvesView.load(runs: [(runName, store)], stage: "dpo", metrics: CurveDefaults.dpo)
            d.dpoCharts = SVGChart.document(title: "DPO", panels: panels)
        }
        if let gid = try store.series(stage: "grpo", metrics: ["reward"], runName: runName).stageRunId {
            let panels = try CurvesView.load(runs: [(runName, store)], stage: "grpo", metrics: CurveDefaults.grpoMetrics([store]))
            d.grpoCharts = SVGChart.document(title: "GRPO", panels: panels)
            d.grpoSamples = try samples(store, stageRunId: gid)
        }
        d.judgments = try JudgmentSummary.all(store).map(JudgmentSummary.report)
        if let pid = try store.series(stage: "ppo", metrics: ["objective/scores"], runName: runName).stageRunId {
            let panels = try CurvesView.load(runs: [(runName, store)], stage: "ppo", metrics: CurveDefaults.ppo)
            d.ppoCharts = SVGChart.document(title: "PPO", panels: panels)
            d.samples = try samples(store, stageRunId: pid)
        }
        return d
    }

    /// The completions a stage run kept, with their prompts and scores.
    static func samples(_ store: RunStore, stageRunId: Int64) throws -> [ReportData.Sample] {
        var prompts: [Int64: String] = [:]
        return try store.samples(stageRunId: stageRunId).map { smp in
            if prompts[smp.promptId] == nil { prompts[smp.promptId] = try store.prompt(id: smp.promptId)?.text ?? "" }
            return .init(iteration: smp.iteration ?? 0, prompt: prompts[smp.promptId]!, completion: smp.text, score: smp.score)
        }
    }
}
