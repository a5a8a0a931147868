import Foundation
import TransformerCore
import RunStore

/// One ranking as DPO reads it: the templated prompt's tokens, each compared completion's tokens
/// (ending in EOS when the completion did), and the pairs the ranking implies.
public struct PreferenceExample: Equatable, Sendable {
    public let rankingId: Int64
    public let promptId: Int64
    public let completionIds: [Int64]
    public let prompt: [Int32]
    public let responses: [[Int32]]
    public let pairs: [ComparisonGroup.Pair]

    public init(rankingId: Int64, promptId: Int64, completionIds: [Int64], prompt: [Int32], responses: [[Int32]], pairs: [ComparisonGroup.Pair]) {
        self.rankingId = rankingId; self.promptId = promptId; self.completionIds = completionIds
        self.prompt = prompt; self.responses = responses; self.pairs = pairs
    }

    /// Pairs as index tuples.
    var pairTuples: [(chosen: Int, rejected: Int)] { pairs.map { ($0.chosen, $0.rejected) } }
}

/// The run's comparisons as DPO examples.
public enum DPOData {
    /// One example per current ranking with at least one pair, in ranking order. Completions are
    /// read as generation wrote them (their stored tokens), or, for imported text, encoded with
    /// EOS appended when they ended with one; prompts are templated as generation templates them.
    public static func examples(store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations, nCtx: Int) throws -> [PreferenceExample] {
        let groups = try store.comparisonGroups()
        let completions = try store.completions(ids: Array(Set(groups.flatMap(\.completionIds))))
        var prompts: [Int64: [Int32]] = [:]
        return try groups.map { g in
            if prompts[g.promptId] == nil {
                prompts[g.promptId] = try annotations.promptIds(try store.prompt(id: g.promptId)?.text ?? "", tokenizer: tokenizer)
            }
            let responses = try g.completionIds.map { id -> [Int32] in
                let c = completions[id]!
                if !c.tokenIds.isEmpty { try tokenizer.checkStored(c.tokenIds, "completion #\(c.id)") }
                return annotations.scoredCompletionIds(c.tokenIds, text: c.text, stopped: c.finishReason == "eos", tokenizer: tokenizer)
            }
            let (p, r) = fit(prompt: prompts[g.promptId]!, responses: responses, nCtx: nCtx)
            return PreferenceExample(rankingId: g.rankingId, promptId: g.promptId, completionIds: g.completionIds, prompt: p, responses: r, pairs: g.pairs)
        }
    }

    /// Makes the prompt and every response fit `nCtx` together: the prompt loses its start first
    /// (down to one token), then responses longer than what is left lose their end.
    public static func fit(prompt: [Int32], responses: [[Int32]], nCtx: Int) -> (prompt: [Int32], responses: [[Int32]]) {
        let longest = responses.map(\.count).max() ?? 0
        guard prompt.count + longest > nCtx else { return (prompt, responses) }
        let keep = max(1, nCtx - longest)
        let p = prompt.count > keep ? Array(prompt.suffix(keep)) : prompt
        let room = nCtx - p.count
        return (p, responses.map { $0.count > room ? Array($0.prefix(room)) : $0 })
    }
}
