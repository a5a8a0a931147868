import Foundation
import TransformerCore

/// Supervised fine-tuning's compute: the next-token cross-entropy of the tokens that carry loss
/// (a demonstration's completion, a conversation's assistant turns), averaged over those tokens,
/// and its gradient. Independent of the run database (SFTStage does the storage).
///
/// A pass is the pretraining step (`LanguageModelTrainer`): one forward over a (rows, T) batch
/// without padding masks, the cross-entropy's gradient written into the logits' gradient, one
/// backward. Sequences are right-padded, so under causal attention the padding cannot reach a
/// real token and needs no mask; the padding and the prompt have no targets.
public final class SFTTrainer {
    /// The model trained.
    public let model: TransformerModel
    /// Sequences per forward/backward pass.
    public let rows: Int
    let pad: Int32
    /// Activation sets by shape, kept while they fit `activationBudget` floats.
    private var activations: [Int: Activations] = [:]
    /// Floats of activations kept between passes: 256 Mi (1 GiB), or more when one set is larger.
    let activationBudget = 1 << 28

    /// A trainer of `model`, `rows` sequences per pass, padding with `pad`.
    public init(model: TransformerModel, rows: Int, pad: Int32) {
        self.model = model; self.rows = max(1, rows); self.pad = pad
    }

    /// One pass's tensors: the sequences right-padded to a width rounded up to a multiple of 8
    /// (fewer activation shapes) within n_ctx, and each position's target: the next token where
    /// that token carries loss, else −1.
    static func layout(_ group: [SFTExample], pad: Int32, nCtx: Int) -> (batch: TokenBatch, targets: [Int32]) {
        let longest = group.map(\.ids.count).max() ?? 1
        let t = max(longest, min(nCtx, (longest + 7) / 8 * 8))
        var tokens = [Int32](repeating: pad, count: group.count * t), targets = [Int32](repeating: -1, count: group.count * t)
        for (r, ex) in group.enumerated() {
            for (j, id) in ex.ids.enumerated() { tokens[r * t + j] = id }
            for j in 1..<ex.ids.count where ex.lossMask[j] { targets[r * t + j - 1] = ex.ids[j] }
        }
        return (TokenBatch(tokens: tokens, batch: group.count, length: t), targets)
    }

    private func acts(rows: Int, t: Int, inferenceOnly: Bool) -> Activations {
        let key = rows << 21 | t << 1 | (inferenceOnly ? 1 : 0)
        if let a = activations[key] { return a }
        let a = Activations(config: model.config, batch: rows, length: t, inferenceOnly: inferenceOnly)
        if activations.values.reduce(a.floatCount, { $0 + $1.floatCount }) > activationBudget { activations.removeAll() }
        activations[key] = a
        return a
    }

    /// `examples` in passes of at most `rows`, longest first (passes over similar lengths carry
    /// less padding; the order within a step changes its gradient only by rounding).
    func passes(_ examples: [SFTExample]) -> [[SFTExample]] {
        let sorted = examples.enumerated().sorted { a, b in
            a.element.ids.count != b.element.ids.count ? a.element.ids.count > b.element.ids.count : a.offset < b.offset
        }.map(\.element)
        return stride(from: 0, to: sorted.count, by: rows).map { Array(sorted[$0..<min($0 + rows, sorted.count)]) }
    }

    /// Forward and backward over one optimiser step's examples: zeroes the gradients and
    /// accumulates the gradient of the step's loss, the mean negative log-likelihood over all its
    /// loss-carrying tokens (TRL's, whose `num_items_in_batch` counts the tokens of the whole
    /// step). Returns the step's figures; `paddedTokens` counts the positions computed.
    public func accumulateGradients(_ batch: [SFTExample]) -> (stats: TokenStatistics, paddedTokens: Int) {
        model.zeroGradients()
        let total = batch.reduce(0) { $0 + $1.lossTokens }
        var stats = TokenStatistics(), computed = 0
        guard total > 0 else { return (stats, 0) }
        let weight = 1 / Float(total)
        for group in passes(batch) {
            let (tb, targets) = Self.layout(group, pad: pad, nCtx: model.config.nCtx)
            let a = acts(rows: tb.batch, t: tb.length, inferenceOnly: false)
            model.forward(tb, a)
            stats.merge(LogitHeads.crossEntropyStatistics(a, targets: targets, lossWeight: weight))
            model.backward(tb, a, fromLogits: true)
            computed += tb.batch * tb.length
        }
        return (stats, computed)
    }

    /// The figures of the model on `examples` (no gradients).
    public func evaluate(_ examples: [SFTExample]) -> TokenStatistics {
        var stats = TokenStatistics()
        for group in passes(examples) {
            let (tb, targets) = Self.layout(group, pad: pad, nCtx: model.config.nCtx)
            let a = acts(rows: tb.batch, t: tb.length, inferenceOnly: true)
            model.forward(tb, a)
            stats.merge(LogitHeads.crossEntropyStatistics(a, targets: targets, lossWeight: nil))
        }
        return stats
    }
}
