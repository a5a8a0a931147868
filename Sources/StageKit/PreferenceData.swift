import Foundation
import RunStore
import TransformerCore

/// One ranking as the preference stages read it (reward training, DPO): the templated prompt's
/// tokens, each compared completion's tokens (ending in EOS when the completion did), and the
/// pairs the ranking implies.
public struct RankedCompletions: Equatable, Sendable {
    /// The ranking; 0 for a human judgment of two policies, which `judgmentId` names.
    public let rankingId: Int64
    /// The judgment (`rlhf compare --judge human`) this pair comes from, when it does.
    public let judgmentId: Int64?
    /// Its prompt.
    public let promptId: Int64
    /// The completions it compared, in the order of `responses`.
    public let completionIds: [Int64]
    /// The prompt as generation templates it.
    public let prompt: [Int32]
    /// Each completion's tokens.
    public let responses: [[Int32]]
    /// (chosen, rejected) as indices into `responses`.
    public let pairs: [ComparisonGroup.Pair]

    /// A ranking of `completionIds` of `promptId`, their tokens, and its pairs.
    public init(
        rankingId: Int64, promptId: Int64, completionIds: [Int64], prompt: [Int32], responses: [[Int32]], pairs: [ComparisonGroup.Pair],
        judgmentId: Int64? = nil
    ) {
        self.rankingId = rankingId; self.judgmentId = judgmentId; self.promptId = promptId; self.completionIds = completionIds
        self.prompt = prompt; self.responses = responses; self.pairs = pairs
    }
}

/// The run's comparisons as token sequences, shared by reward training and DPO so that both read
/// the same rankings the same way.
public enum PreferenceData {
    /// One entry per current ranking that has at least one pair (ties give none), in ranking
    /// order, then, `withJudgments`, one per current decided human judgment of two policies (a
    /// tie or a skip gives none), the completion the annotator preferred chosen, in judgment
    /// order. Completions are read as generation wrote them (their stored tokens, checked against
    /// the tokenizer) when `useStoredTokens`, else, as for imported text, encoded with EOS
    /// appended when they ended with one.
    public static func rankings(
        store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations,
        useStoredTokens: Bool = true, withJudgments: Bool = false
    ) throws -> [RankedCompletions] {
        var groups = try store.comparisonGroups()
        var judgmentIds: [Int64?] = groups.map { _ in nil }
        if withJudgments {
            for j in try store.judgmentComparisons() {
                groups.append(
                    ComparisonGroup(
                        rankingId: 0, promptId: j.promptId, completionIds: [j.chosenId, j.rejectedId], pairs: [.init(chosen: 0, rejected: 1)]))
                judgmentIds.append(j.judgmentId)
            }
        }
        let completions = try store.completions(ids: Array(Set(groups.flatMap(\.completionIds))))
        var prompts: [Int64: [Int32]] = [:]
        return try zip(groups, judgmentIds).map { g, judgmentId in
            if prompts[g.promptId] == nil {
                prompts[g.promptId] = try annotations.promptIds(try store.prompt(id: g.promptId)?.text ?? "", tokenizer: tokenizer)
            }
            let responses = try g.completionIds.map { id in
                try completionTokens(completions[id]!, tokenizer: tokenizer, annotations: annotations, useStoredTokens: useStoredTokens)
            }
            return RankedCompletions(
                rankingId: g.rankingId, promptId: g.promptId, completionIds: g.completionIds,
                prompt: prompts[g.promptId]!, responses: responses, pairs: g.pairs, judgmentId: judgmentId)
        }
    }

    /// A completion's tokens as a scoring model reads them: its stored tokens (checked against
    /// `tokenizer`) when `useStoredTokens` and it has them, else its text re-encoded, with EOS
    /// when it stopped at one.
    public static func completionTokens(
        _ c: CompletionRecord, tokenizer: Tokenizer, annotations: ModelAnnotations,
        useStoredTokens: Bool
    ) throws -> [Int32] {
        let stored = useStoredTokens ? c.tokenIds : []
        if !stored.isEmpty { try tokenizer.checkStored(stored, "completion #\(c.id)") }
        return annotations.scoredCompletionIds(stored, text: c.text, stopped: c.finishReason == "eos", tokenizer: tokenizer)
    }

    /// The error both stages give for a run with no comparisons.
    public static let noComparisons = StoreError(
        "the run has no comparisons yet; rank completions with 'rlhf label' (or 'rlhf label --simulate lexicon'), or import pairs with 'rlhf labels import'"
    )

    /// Refuses comparisons that cover fewer than two prompts, which a split by prompt into train
    /// and validation (`PreferenceSplit`) cannot divide.
    public static func checkSplittable(_ promptIds: Set<Int64>) throws {
        guard promptIds.count >= 2 else {
            throw StoreError("the comparisons cover \(promptIds.count) prompt; a validation split by prompt needs at least 2 (label more items)")
        }
    }
}
