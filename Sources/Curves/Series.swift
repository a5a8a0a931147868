import Foundation
import RunStore

/// One curve: a metric of one run.
public struct Series: Equatable, Sendable {
    /// The run it came from (its name, for the legend).
    public var run: String
    public var metric: String
    /// (step, value) in step order; values may be NaN or infinite.
    public var points: [(Double, Double)]

    public init(run: String, metric: String, points: [(Double, Double)]) {
        self.run = run; self.metric = metric; self.points = points
    }

    public static func == (a: Series, b: Series) -> Bool {
        a.run == b.run && a.metric == b.metric && a.points.count == b.points.count
            && zip(a.points, b.points).allSatisfy { $0.0 == $1.0 && ($0.1 == $1.1 || ($0.1.isNaN && $1.1.isNaN)) }
    }

    /// The finite points.
    public var finite: [(Double, Double)] { points.filter { $0.0.isFinite && $0.1.isFinite } }
    /// How many points are NaN or infinite.
    public var nonFinite: Int { points.count - finite.count }

    /// Exponential moving average (TensorBoard's smoothing): s ← α·s + (1 − α)·x over the finite
    /// points; α = 0 leaves the series as it is.
    public func smoothed(_ alpha: Double) -> Series {
        var s: Double?
        let pts = finite.map { (x, y) -> (Double, Double) in
            s = s.map { alpha * $0 + (1 - alpha) * y } ?? y
            return (x, s!)
        }
        return Series(run: run, metric: metric, points: pts)
    }
}

/// The default metrics of each stage.
public enum CurveDefaults {
    public static let ppo = ["objective/scores", "objective/kl", "objective/entropy", "loss/value", "policy/clipfrac", "objective/kl_coef"]
    public static let reward = ["reward/loss", "reward/val_accuracy", "reward/margin"]
    public static let dpo = ["loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected", "eval_rewards/accuracies"]
    /// GRPO's, under TRL's names (`kl` is logged only when β ≠ 0).
    public static let grpo = ["reward", "reward_std", "frac_reward_zero_std", "completions/mean_length", "entropy", "kl"]
    /// SFT's, under TRL's names.
    public static let sft = ["loss", "mean_token_accuracy", "entropy", "eval_loss", "eval_mean_token_accuracy", "grad_norm"]

    /// The default metrics of a stage (ppo, reward, dpo, grpo or sft).
    public static func metrics(stage: String) -> [String] {
        switch stage {
        case "ppo": return ppo
        case "dpo": return dpo
        case "grpo": return grpo
        case "sft": return sft
        default: return reward
        }
    }

    /// The stage's name in the run database.
    public static func stageName(_ stage: String) -> String { stage == "reward" ? "train-reward" : stage }
}

extension RunStore {
    /// The latest stage run of `stage` that logged metrics, and its series for `metrics`.
    public func series(stage: String, metrics names: [String], runName: String) throws -> (stageRunId: Int64?, series: [Series]) {
        let runs = try stageRuns(stage: CurveDefaults.stageName(stage))
        guard let run = try runs.first(where: { try hasMetrics(stageRunId: $0.id) }) ?? runs.first else {
            return (nil, names.map { Series(run: runName, metric: $0, points: []) })
        }
        let pts = try self.metrics(stageRunId: run.id, names: names)
        let grouped = Dictionary(grouping: pts, by: \.name)
        return (run.id, names.map { m in Series(run: runName, metric: m, points: (grouped[m] ?? []).map { (Double($0.step), $0.value) }) })
    }
}

extension CurveDefaults {
    /// GRPO's default metrics for these runs: `grpo`, without `kl` unless one of them logged it
    /// (β ≠ 0), then each reward source's `rewards/NAME/mean` when a run sums several.
    public static func grpoMetrics(_ stores: [RunStore]) throws -> [String] {
        var logged: Set<String> = []
        for store in stores {
            let runs = try store.stageRuns(stage: "grpo")
            if let run = try runs.first(where: { try store.hasMetrics(stageRunId: $0.id) }) {
                logged.formUnion(try store.metrics(stageRunId: run.id).map(\.name))
            }
        }
        let sources = logged.filter { $0.hasPrefix("rewards/") && $0.hasSuffix("/mean") }.sorted()
        return grpo.filter { $0 != "kl" || logged.contains("kl") } + (sources.count > 1 ? sources : [])
    }
}
