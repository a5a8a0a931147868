import Foundation
import RunStore
import StageKit
import TransformerCore

/// Ranks every pending item without a terminal, through the same storage code as `rlhf label`.
public enum SimulatedLabeler {
    /// Ranks by score (equal scores tie); then, with probability `noise`, swaps each pair of
    /// adjacent places, as an inconsistent person would. Returns ranks per display index.
    public static func ranks(scores: [Double], noise: Double, rng: inout SeededRandom) -> [Int] {
        let distinct = Array(Set(scores)).sorted(by: >)
        var groups = distinct.map { s in scores.indices.filter { scores[$0] == s } }
        if noise > 0 && groups.count > 1 {
            for i in 0..<(groups.count - 1) where rng.uniformDouble() < noise { groups.swapAt(i, i + 1) }
        }
        var r = [Int](repeating: 0, count: scores.count)
        for (g, members) in groups.enumerated() { for m in members { r[m] = g + 1 } }
        return r
    }

    /// Labels everything `annotator` has not labeled yet. Each item is one transaction.
    public static func run(
        store: RunStore, rule: SimulationRule, noise: Double, seed: UInt64, annotator: String,
        order: DisplayOrder, guidelinesVersion: String?, progress: ((Int, Int) -> Void)? = nil
    ) throws -> Int {
        let queue = try LabelQueue(store: store, annotator: annotator, order: order)
        let pending = try queue.pending()
        progress?(0, pending.count)
        for (n, item) in pending.enumerated() {
            let shown = queue.shownOrder(item)
            let records = try store.completions(ids: shown)
            let scores = shown.map { rule.score(records[$0]?.text ?? "") }
            var rng = SeededRandom(seed: seed ^ LabelQueue.seed(annotator, item.promptId, item.modelId))
            let r = ranks(scores: scores, noise: noise, rng: &rng)
            let now = Date().timeIntervalSince1970
            try store.submitRanking(
                NewRanking(
                    promptId: item.promptId, modelId: item.modelId, annotator: annotator, shownOrder: shown,
                    ranks: r, status: .ranked, guidelineVersion: guidelinesVersion,
                    source: "simulated:\(rule.name)", startedAt: now, submittedAt: now))
            progress?(n + 1, pending.count)
        }
        return pending.count
    }
}
