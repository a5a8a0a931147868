import Foundation
import RunStore
import StageKit
import TransformerCore

/// One ranking as training data: the token sequences (template(prompt) + completion, ending in
/// EOS when the completion did) of the completions it compared, and its pairs.
public struct RankingExample: Equatable, Sendable {
    /// The ranking; 0 for a human judgment, which `judgmentId` names.
    public let rankingId: Int64
    /// The judgment (`rlhf compare --judge human`) this example comes from, when it does.
    public let judgmentId: Int64?
    public let promptId: Int64
    public let completionIds: [Int64]
    public let sequences: [[Int32]]
    /// (chosen, rejected) as indices into `sequences`.
    public let pairs: [Pair]

    /// One chosen/rejected pair, as indices.
    public typealias Pair = ComparisonGroup.Pair

    public init(rankingId: Int64, promptId: Int64, completionIds: [Int64], sequences: [[Int32]], pairs: [Pair], judgmentId: Int64? = nil) {
        self.rankingId = rankingId; self.judgmentId = judgmentId; self.promptId = promptId; self.completionIds = completionIds
        self.sequences = sequences; self.pairs = pairs
    }
}

/// Turning a run's comparisons into examples, and splitting them by prompt.
public enum RewardData {
    /// The token sequence a reward model reads for a completion: the templated prompt followed
    /// by the completion's own tokens (re-encoded from its text, with EOS, when it has none, as
    /// imported pairs do). Longer than `nCtx`: the start of the prompt is dropped.
    public static func sequence(
        prompt: String, completion: CompletionRecord, tokenizer: Tokenizer,
        annotations: ModelAnnotations, nCtx: Int, useStoredTokens: Bool
    ) throws -> [Int32] {
        let body = try PreferenceData.completionTokens(completion, tokenizer: tokenizer, annotations: annotations, useStoredTokens: useStoredTokens)
        return fit(try annotations.promptIds(prompt, tokenizer: tokenizer) + body, nCtx: nCtx)
    }

    /// One example per current ranking that has at least one pair (ties give none), and, with
    /// `withJudgments`, one per decided human judgment, read as `PreferenceData` reads them.
    public static func examples(
        store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations, nCtx: Int,
        useStoredTokens: Bool, withJudgments: Bool = false
    ) throws -> [RankingExample] {
        try PreferenceData.rankings(
            store: store, tokenizer: tokenizer, annotations: annotations, useStoredTokens: useStoredTokens, withJudgments: withJudgments
        ).map { r in
            RankingExample(
                rankingId: r.rankingId, promptId: r.promptId, completionIds: r.completionIds,
                sequences: r.responses.map { fit(r.prompt + $0, nCtx: nCtx) }, pairs: r.pairs, judgmentId: r.judgmentId)
        }
    }

    /// A sequence longer than `nCtx` without the start of its prompt.
    static func fit(_ seq: [Int32], nCtx: Int) -> [Int32] { seq.count > nCtx ? Array(seq.suffix(nCtx)) : seq }

    /// Splits by prompt (`PreferenceSplit`, the split DPO uses too): about `fraction` of the
    /// distinct prompts (at least one) go to validation with all their rankings. No prompt is on
    /// both sides.
    public static func split(_ examples: [RankingExample], fraction: Double, seed: UInt64) -> (train: [RankingExample], validation: [RankingExample])
    {
        let val = PreferenceSplit.validationPrompts(Set(examples.map(\.promptId)), fraction: fraction, seed: seed)
        return (examples.filter { !val.contains($0.promptId) }, examples.filter { val.contains($0.promptId) })
    }
}

/// The Bradley–Terry objective of one ranking: the mean over its pairs of
/// −log σ(r_chosen − r_rejected − margin).
public enum RankingLoss {
    /// −log σ(x), computed without overflow.
    public static func negLogSigmoid(_ x: Double) -> Double { max(-x, 0) + log1p(exp(-abs(x))) }

    /// The ranking's loss and its gradient with respect to each reward, scaled by `weight`.
    public static func lossAndGradient(rewards: [Float], pairs: [RankingExample.Pair], margin: Float, weight: Float = 1) -> (
        loss: Double, gradient: [Float]
    ) {
        var grad = [Float](repeating: 0, count: rewards.count)
        guard !pairs.isEmpty else { return (0, grad) }
        var loss = 0.0
        let scale = Double(weight) / Double(pairs.count)
        for p in pairs {
            let d = Double(rewards[p.chosen]) - Double(rewards[p.rejected]) - Double(margin)
            loss += negLogSigmoid(d)
            let s = 1 / (1 + exp(d)) // σ(−d) = −∂(−log σ(d))/∂d
            grad[p.chosen] -= Float(s * scale)
            grad[p.rejected] += Float(s * scale)
        }
        return (loss / Double(pairs.count), grad)
    }
}
