import Foundation
import RunStore
import StageKit
import TransformerCore

/// Demonstrations made without a writer, for runs that have rankings or a scorer but no written
/// answers: each ranking's top completion (`rlhf sft --from rankings`), or the best of N samples
/// of the policy (`--from best-of N`, rejection sampling as in Llama 2). Only completions that
/// ended with a stop token are taken: training appends one, and a cut-off answer would teach
/// stopping mid-sentence.
public enum RejectionSampling {
    /// The demonstrations the current rankings give: for each ranked one, the completion it put
    /// first (the first shown among tied firsts), unless that completion did not stop or is
    /// already a `rankings` demonstration. Also returns how many rankings gave none.
    public static func fromRankings(store: RunStore, now: Double = Date().timeIntervalSince1970) throws -> (
        demonstrations: [NewDemonstration], passedOver: Int
    ) {
        let taken = Set(try store.demonstrations().filter { $0.demonstration.source == "rankings" }.compactMap(\.demonstration.fromCompletionId))
        let ranked = try store.rankings().filter { $0.ranking.status == .ranked && $0.ranking.ranks != nil }
        let tops = ranked.compactMap { r -> (RankingRecord, Int64)? in
            guard let ranks = r.ranking.ranks, let best = ranks.min(), let i = ranks.firstIndex(of: best), i < r.ranking.shownOrder.count else {
                return nil
            }
            return (r, r.ranking.shownOrder[i])
        }
        let completions = try store.completions(ids: tops.map(\.1))
        var out: [NewDemonstration] = [], seen = taken, passedOver = ranked.count - tops.count
        for (r, id) in tops {
            guard let c = completions[id], c.finishReason == "eos", !seen.contains(id),
                !c.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
            else {
                passedOver += 1
                continue
            }
            seen.insert(id)
            out.append(
                NewDemonstration(
                    promptId: r.ranking.promptId, text: c.text, annotator: r.ranking.annotator, source: "rankings", fromCompletionId: id,
                    guidelineVersion: r.ranking.guidelineVersion, startedAt: now, submittedAt: now))
        }
        return (out, passedOver)
    }

    /// The index of the best candidate: the highest score among those that stopped (the first
    /// of equal ones), nil when none stopped.
    public static func pick(scores: [Double], finished: [Bool]) -> Int? {
        var best: Int?
        for i in scores.indices where finished[i] && scores[i].isFinite {
            if best == nil || scores[i] > scores[best!] { best = i }
        }
        return best
    }

    /// Scores texts (the completion without its stop token) and token sequences of one prompt.
    public typealias Scorer = (_ prompt: [Int32], _ responses: [[Int32]], _ texts: [String]) -> [Double]

    /// Best-of-`n`: samples `n` completions of each prompt from `policy` (seeded), scores them
    /// with `score` and keeps the best (`pick`) as a `best-of:N` demonstration by `annotator`.
    /// Prompts whose template and `maxNewTokens` do not fit the context, and prompts none of
    /// whose samples stopped, give none. `progress(done, total)` counts prompts.
    public static func bestOf(
        _ n: Int, prompts: [PromptRecord], policy: PretrainedModel, maxNewTokens: Int, settings: SamplingSettings, seed: UInt64,
        annotator: String, score: Scorer, progress: ((Int, Int) -> Void)? = nil, now: Double = Date().timeIntervalSince1970
    ) throws -> (demonstrations: [NewDemonstration], passedOver: Int) {
        let tok = policy.tokenizer, notes = policy.annotations, stops = notes.stopTokens(tok)
        guard let pad = tok.padId ?? stops.first else { throw StoreError("the policy has no end-of-text token to stop its samples") }
        var fitting: [(PromptRecord, [Int32])] = [], passedOver = 0
        for p in prompts {
            let ids = try notes.promptIds(p.text, tokenizer: tok)
            if ids.isEmpty || ids.count + maxNewTokens > policy.model.config.nCtx { passedOver += 1 } else { fitting.append((p, ids)) }
        }
        let generator = Generator(model: policy.model)
        var rng = SeededRandom(seed: seed ^ 0xB357_0F00)
        // Prompts per generation call: about 64 sequences.
        let perCall = max(1, 64 / n)
        var out: [NewDemonstration] = []
        for start in stride(from: 0, to: fitting.count, by: perCall) {
            let chunk = Array(fitting[start..<min(start + perCall, fitting.count)])
            let gens = generator.generate(
                prompts: chunk.flatMap { Array(repeating: $0.1, count: n) }, maxNewTokens: maxNewTokens, settings: settings,
                stopTokens: stops, pad: pad, rng: &rng)
            for (k, (p, ids)) in chunk.enumerated() {
                let group = Array(gens[(k * n)..<((k + 1) * n)])
                let finished = group.map { $0.finishReason == .eos }
                let texts = zip(group, finished).map { g, done in tok.decode(done ? Array(g.tokens.dropLast()) : g.tokens) }
                let scores = score(ids, group.map(\.tokens), texts)
                if let i = pick(scores: scores, finished: finished), !texts[i].trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
                    out.append(
                        NewDemonstration(
                            promptId: p.id, text: texts[i], annotator: annotator, source: "best-of:\(n)", startedAt: now, submittedAt: now))
                } else {
                    passedOver += 1
                }
            }
            progress?(min(start + perCall, fitting.count), fitting.count)
        }
        return (out, passedOver)
    }
}
