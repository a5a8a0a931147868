import Foundation
import TransformerCore
import RunStore

/// One ranking as training data: the token sequences (template(prompt) + completion, ending in
/// EOS when the completion did) of the completions it compared, and its pairs.
public struct RankingExample: Equatable, Sendable {
    public let rankingId: Int64
    public let promptId: Int64
    public let completionIds: [Int64]
    public let sequences: [[Int32]]
    /// (chosen, rejected) as indices into `sequences`.
    public let pairs: [Pair]

    public struct Pair: Equatable, Sendable {
        public let chosen: Int, rejected: Int
        public init(chosen: Int, rejected: Int) { self.chosen = chosen; self.rejected = rejected }
    }

    public init(rankingId: Int64, promptId: Int64, completionIds: [Int64], sequences: [[Int32]], pairs: [Pair]) {
        self.rankingId = rankingId; self.promptId = promptId; self.completionIds = completionIds
        self.sequences = sequences; self.pairs = pairs
    }
}

/// Turning a run's comparisons into examples, and splitting them by prompt.
public enum RewardData {
    /// The token sequence a reward model reads for a completion: the templated prompt followed
    /// by the completion's own tokens (re-encoded from its text, with EOS, when it has none, as
    /// imported pairs do). Longer than `nCtx`: the start of the prompt is dropped.
    public static func sequence(prompt: String, completion: CompletionRecord, tokenizer: Tokenizer,
                                annotations: ModelAnnotations, nCtx: Int, useStoredTokens: Bool) -> [Int32] {
        var body = completion.tokenIds
        if body.isEmpty || !useStoredTokens {
            body = tokenizer.encode(completion.text, allowSpecial: false)
            if completion.finishReason == "eos", let eos = tokenizer.eosId { body.append(eos) }
        }
        let seq = tokenizer.encode(annotations.format(prompt: prompt), allowSpecial: false) + body
        return seq.count > nCtx ? Array(seq.suffix(nCtx)) : seq
    }

    /// One example per current ranking that has at least one pair (ties give none).
    public static func examples(store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations, nCtx: Int,
                                useStoredTokens: Bool) throws -> [RankingExample] {
        let comps = try store.comparisons()
        let completions = try store.completions(ids: Array(Set(comps.flatMap { [$0.chosenId, $0.rejectedId] })))
        var prompts: [Int64: String] = [:]
        var out: [RankingExample] = []
        var i = 0
        while i < comps.count {
            var j = i
            while j < comps.count && comps[j].rankingId == comps[i].rankingId { j += 1 }
            let group = comps[i..<j]
            i = j
            var ids: [Int64] = []
            for c in group { for id in [c.chosenId, c.rejectedId] where !ids.contains(id) { ids.append(id) } }
            let promptId = group.first!.promptId
            if prompts[promptId] == nil { prompts[promptId] = try store.prompt(id: promptId)?.text ?? "" }
            let seqs = ids.map { id in
                sequence(prompt: prompts[promptId]!, completion: completions[id]!, tokenizer: tokenizer, annotations: annotations,
                         nCtx: nCtx, useStoredTokens: useStoredTokens)
            }
            let pairs = group.map { RankingExample.Pair(chosen: ids.firstIndex(of: $0.chosenId)!, rejected: ids.firstIndex(of: $0.rejectedId)!) }
            out.append(RankingExample(rankingId: group.first!.rankingId, promptId: promptId, completionIds: ids, sequences: seqs, pairs: pairs))
        }
        return out
    }

    /// Splits by prompt, seeded: about `fraction` of the distinct prompts (at least one) go to
    /// validation with all their rankings. No prompt is on both sides.
    public static func split(_ examples: [RankingExample], fraction: Double, seed: UInt64) -> (train: [RankingExample], validation: [RankingExample]) {
        var prompts = Array(Set(examples.map(\.promptId))).sorted()
        var rng = SeededRandom(seed: seed ^ 0x5B17)
        rng.shuffle(&prompts)
        let nVal = min(prompts.count - 1, max(1, Int((Double(prompts.count) * fraction).rounded())))
        let val = Set(prompts.prefix(max(0, nVal)))
        return (examples.filter { !val.contains($0.promptId) }, examples.filter { val.contains($0.promptId) })
    }
}

/// The Bradley–Terry objective of one ranking: the mean over its pairs of
/// −log σ(r_chosen − r_rejected − margin).
public enum RankingLoss {
    /// −log σ(x), computed without overflow.
    public static func negLogSigmoid(_ x: Double) -> Double { max(-x, 0) + log1p(exp(-abs(x))) }

    /// The ranking's loss and its gradient with respect to each reward, scaled by `weight`.
    public static func lossAndGradient(rewards: [Float], pairs: [RankingExample.Pair], margin: Float, weight: Float = 1) -> (loss: Double, gradient: [Float]) {
        var grad = [Float](repeating: 0, count: rewards.count)
        guard !pairs.isEmpty else { return (0, grad) }
        var loss = 0.0
        let scale = Double(weight) / Double(pairs.count)
        for p in pairs {
            let d = Double(rewards[p.chosen]) - Double(rewards[p.rejected]) - Double(margin)
            loss += negLogSigmoid(d)
            let s = 1 / (1 + exp(d))          // σ(−d) = −∂(−log σ(d))/∂d
            grad[p.chosen] -= Float(s * scale)
            grad[p.rejected] += Float(s * scale)
        }
        return (loss / Double(pairs.count), grad)
    }
}
