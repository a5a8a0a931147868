import Foundation
import TransformerCore

/// DPO's compute: summed completion log-probabilities of whole rankings, the loss over their
/// pairs, and its gradient back through the policy. Independent of the run database (DPOStage
/// does the storage).
///
/// A forward pass holds whole rankings, up to `rows` sequences, laid out as generation lays them
/// out (`PromptResponseBatch`); each completion is scored once however many pairs it is in.
/// Rankings of similar length share a pass (the order within a step does not change its
/// gradient, only the rounding of its sum).
public final class DPOTrainer {
    public let policy: TransformerModel
    public let objective: DPOObjective
    /// Sequences per forward pass (a ranking larger than this gets a pass of its own).
    public let rows: Int
    let pad: Int32
    /// Activation sets by shape (policy and reference share a configuration), kept while they
    /// fit `activationBudget` floats.
    private var activations: [Int: Activations] = [:]
    /// Floats of activations kept between passes: 256 Mi (1 GiB), or more when one set is larger.
    let activationBudget = 1 << 28

    public init(policy: TransformerModel, objective: DPOObjective, rows: Int = 16, pad: Int32) {
        self.policy = policy; self.objective = objective; self.rows = max(1, rows); self.pad = pad
    }

    /// Groups of whole rankings per forward pass: at most `rows` sequences (unless one ranking
    /// alone has more), and a row length (longest prompt + longest response) within n_ctx.
    func passes(_ examples: [PreferenceExample], nCtx: Int) -> [[PreferenceExample]] {
        var out: [[PreferenceExample]] = [], cur: [PreferenceExample] = []
        var n = 0, p = 0, r = 0
        for ex in examples {
            let ep = ex.prompt.count, er = ex.responses.map(\.count).max() ?? 0
            if !cur.isEmpty && (n + ex.responses.count > rows || max(p, ep) + max(r, er) > nCtx) {
                out.append(cur); cur = []; n = 0; p = 0; r = 0
            }
            cur.append(ex); n += ex.responses.count; p = max(p, ep); r = max(r, er)
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// One pass's layout: the response width is rounded up so that rows are a multiple of 8
    /// tokens long (fewer activation shapes), within n_ctx.
    func layout(_ group: [PreferenceExample], nCtx: Int) -> PromptResponseBatch {
        let prompts = group.flatMap { ex in Array(repeating: ex.prompt, count: ex.responses.count) }
        let responses = group.flatMap(\.responses)
        let p = prompts.map(\.count).max()!, r = max(1, responses.map(\.count).max()!)
        let width = max(r, min(nCtx - p, (p + r + 7) / 8 * 8 - p))
        return PromptResponseBatch(prompts: prompts, responses: responses, width: width, pad: pad)
    }

    private func acts(_ model: TransformerModel, rows: Int, t: Int, inferenceOnly: Bool) -> Activations {
        let key = rows << 21 | t << 1 | (inferenceOnly ? 1 : 0)
        if let a = activations[key] { return a }
        let a = Activations(config: model.config, batch: rows, length: t, inferenceOnly: inferenceOnly)
        if activations.values.reduce(a.floatCount, { $0 + $1.floatCount }) > activationBudget { activations.removeAll() }
        activations[key] = a
        return a
    }

    /// Indices of `examples` from the longest row (prompt + longest response) to the shortest,
    /// ties in the given order: passes over similar lengths carry less padding.
    static func byLength(_ examples: [PreferenceExample]) -> [Int] {
        let len = examples.map { $0.prompt.count + ($0.responses.map(\.count).max() ?? 0) }
        return examples.indices.sorted { len[$0] != len[$1] ? len[$0] > len[$1] : $0 < $1 }
    }

    /// Per-position target log-probabilities summed over each row's response.
    static func rowSums(_ lp: [Float], _ layout: PromptResponseBatch) -> [Double] {
        (0..<layout.rows).map { k in
            var s = 0.0
            for j in 0..<layout.lengths[k] { s += Double(lp[k * layout.t + layout.p + j - 1]) }
            return s
        }
    }

    /// The summed log-probability of each completion of each example under `model` (the policy
    /// or the reference), in example order.
    public func logProbSums(_ model: TransformerModel, _ examples: [PreferenceExample], progress: ((Int) -> Void)? = nil) -> [[Double]] {
        let order = Self.byLength(examples)
        var out = [[Double]](repeating: [], count: examples.count)
        var next = 0
        for group in passes(order.map { examples[$0] }, nCtx: model.config.nCtx) {
            let layout = layout(group, nCtx: model.config.nCtx)
            let all = Array(0..<layout.rows)
            let a = acts(model, rows: layout.rows, t: layout.t, inferenceOnly: true)
            a.logitWindow = layout.logitWindow
            model.forward(layout.batch(all), a)
            var sums = Self.rowSums(LogitHeads.targetLogProbs(a, targets: layout.targets(all)), layout)[...]
            for ex in group {
                out[order[next]] = Array(sums.prefix(ex.responses.count))
                sums = sums.dropFirst(ex.responses.count)
                next += 1
            }
            progress?(group.count)
        }
        return out
    }

    /// Forward and backward over one optimiser step's rankings: zeroes the policy's gradients and
    /// accumulates the gradient of the step's loss (the mean over its rankings of each ranking's
    /// mean pair loss). `reference[i]` holds the reference log-probabilities of `batch[i]`.
    public func accumulateGradients(_ batch: [PreferenceExample], reference: [[Double]]) -> DPOStats {
        precondition(batch.count == reference.count, "one reference row per example")
        policy.zeroGradients()
        var stats = DPOStats()
        let weight = 1 / Double(batch.count)
        let order = Self.byLength(batch)
        var next = 0
        for group in passes(order.map { batch[$0] }, nCtx: policy.config.nCtx) {
            let layout = layout(group, nCtx: policy.config.nCtx)
            let all = Array(0..<layout.rows)
            let targets = layout.targets(all)
            let tb = layout.batch(all)
            let a = acts(policy, rows: layout.rows, t: layout.t, inferenceOnly: false)
            // Logits only where they predict completion tokens.
            a.logitWindow = layout.logitWindow
            policy.forward(tb, a)
            let sums = Self.rowSums(LogitHeads.targetLogProbs(a, targets: targets), layout)
            // d loss / d (summed log-probability) of each row, spread over its response tokens.
            var dLogProb = [Float](repeating: 0, count: layout.rows * layout.t)
            var row = 0
            for ex in group {
                let k = ex.responses.count
                let (s, g) = objective.ranking(
                    policy: Array(sums[row..<(row + k)]), reference: reference[order[next]],
                    pairs: ex.pairTuples, weight: weight)
                stats.merge(s)
                for (c, d) in g.enumerated() {
                    let r = row + c
                    for j in 0..<layout.lengths[r] { dLogProb[r * layout.t + layout.p + j - 1] = Float(d) }
                }
                row += k
                next += 1
            }
            LogitHeads.logitGradient(a, targets: targets, temperature: 1, dLogProb: dLogProb, dEntropy: nil)
            policy.backward(tb, a, fromLogits: true)
        }
        return stats
    }

    /// The figures of the policy on some rankings (no gradients).
    public func evaluate(_ examples: [PreferenceExample], reference: [[Double]]) -> DPOStats {
        var stats = DPOStats()
        for (i, (ex, lp)) in zip(examples, logProbSums(policy, examples)).enumerated() {
            stats.merge(objective.ranking(policy: lp, reference: reference[i], pairs: ex.pairTuples).stats)
        }
        return stats
    }
}
