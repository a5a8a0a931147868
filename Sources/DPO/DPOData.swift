import Foundation
import RunStore
import StageKit
import TransformerCore

/// One ranking as DPO reads it: the templated prompt's tokens, each compared completion's tokens
/// (ending in EOS when the completion did), and the pairs the ranking implies, cut to fit the
/// context.
public typealias PreferenceExample = RankedCompletions

extension RankedCompletions {
    /// Pairs as index tuples.
    var pairTuples: [(chosen: Int, rejected: Int)] { pairs.map { ($0.chosen, $0.rejected) } }
}

/// The run's comparisons as DPO examples.
public enum DPOData {
    /// One example per current ranking with at least one pair, in ranking order, read as
    /// `PreferenceData` reads them (stored tokens as generation wrote them), cut to fit `nCtx`.
    public static func examples(store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations, nCtx: Int) throws -> [PreferenceExample] {
        try PreferenceData.rankings(store: store, tokenizer: tokenizer, annotations: annotations).map { r in
            let (p, responses) = fit(prompt: r.prompt, responses: r.responses, nCtx: nCtx)
            return PreferenceExample(
                rankingId: r.rankingId, promptId: r.promptId, completionIds: r.completionIds, prompt: p,
                responses: responses, pairs: r.pairs)
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
