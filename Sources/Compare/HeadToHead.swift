import Foundation
import RunStore
import TransformerCore

/// One sampled completion of a prompt.
public struct Sample: Sendable {
    public let promptId: Int64
    public let prompt: String
    /// The templated prompt's tokens.
    public let promptTokens: [Int32]
    /// The new tokens, ending with EOS when the model produced it.
    public let tokens: [Int32]
    /// Log-probability of each new token at the sampling temperature.
    public let logProbs: [Float]
    /// The completion's text, without EOS.
    public let text: String
    public let finished: Bool
}

/// Wins, losses and ties of A against B over paired samples.
public struct Tally: Equatable, Sendable {
    public var wins = 0, losses = 0, ties = 0
    public init() {}
    public var pairs: Int { wins + losses + ties }
    /// How often A is preferred where the judge prefers one: wins / (wins + losses).
    public var preferred: Double { wins + losses > 0 ? Double(wins) / Double(wins + losses) : .nan }
    /// The 95% Wilson score interval of `preferred`.
    public var interval: (low: Double, high: Double) { HeadToHead.wilson(successes: wins, trials: wins + losses) }

    /// Counts one pair from the two scores.
    public mutating func add(_ a: Double, _ b: Double) {
        if a > b { wins += 1 } else if a < b { losses += 1 } else { ties += 1 }
    }
}

/// Sampling two policies on the same prompts with the same random stream, and counting which
/// completion a judge scores higher.
public enum HeadToHead {
    /// Samples `perPrompt` completions of each prompt from `model`, `batch` sequences at a time,
    /// from a generator seeded with `seed` (so two models draw with common random numbers).
    /// Prompts that do not fit the context with `maxNewTokens` are skipped.
    public static func sample(
        _ model: PretrainedModel, prompts: [PromptRecord], perPrompt: Int, maxNewTokens: Int,
        settings: SamplingSettings, seed: UInt64, batch: Int = 64, progress: ((Int, Int) -> Void)? = nil
    ) throws -> [Sample] {
        let tok = model.tokenizer, stops = model.annotations.stopTokens(tok)
        let encoded = try prompts.compactMap { p -> (PromptRecord, [Int32])? in
            let ids = try model.annotations.promptIds(p.text, tokenizer: tok)
            return ids.isEmpty || ids.count + maxNewTokens > model.model.config.nCtx ? nil : (p, ids)
        }
        let inputs = encoded.flatMap { Array(repeating: $0, count: perPrompt) }
        var rng = SeededRandom(seed: seed)
        let generator = Generator(model: model.model)
        var out: [Sample] = []
        out.reserveCapacity(inputs.count)
        for start in stride(from: 0, to: inputs.count, by: batch) {
            let chunk = Array(inputs[start..<min(start + batch, inputs.count)])
            let gens = generator.generate(
                prompts: chunk.map(\.1), maxNewTokens: maxNewTokens, settings: settings, stopTokens: stops,
                pad: tok.padId ?? stops.first ?? 0, rng: &rng)
            for ((p, ids), g) in zip(chunk, gens) {
                let finished = g.finishReason == .eos
                out.append(
                    Sample(
                        promptId: p.id, prompt: p.text, promptTokens: ids, tokens: g.tokens, logProbs: g.logProbs,
                        text: tok.decode(finished ? Array(g.tokens.dropLast()) : g.tokens), finished: finished))
            }
            progress?(out.count, inputs.count)
        }
        return out
    }

    /// Pairs the i-th sample of A with the i-th of B (same prompt) and counts the judge's verdicts.
    public static func tally(_ a: [Double], _ b: [Double]) -> Tally {
        precondition(a.count == b.count, "paired scores")
        var t = Tally()
        for (x, y) in zip(a, b) { t.add(x, y) }
        return t
    }

    /// The Wilson score interval for a binomial proportion (z = 1.96: 95%); (NaN, NaN) for no trials.
    public static func wilson(successes: Int, trials: Int, z: Double = 1.959964) -> (low: Double, high: Double) {
        wilson(successes: Double(successes), trials: trials, z: z)
    }

    /// The Wilson score interval around the proportion `successes / trials`, where a success may
    /// count a half (a tie, in a win rate that counts ties half).
    public static func wilson(successes: Double, trials: Int, z: Double = 1.959964) -> (low: Double, high: Double) {
        guard trials > 0 else { return (.nan, .nan) }
        let n = Double(trials), p = successes / n, z2 = z * z
        let centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        let half = z / (1 + z2 / n) * (p * (1 - p) / n + z2 / (4 * n * n)).squareRoot()
        return (max(0, centre - half), min(1, centre + half))
    }

    /// Σ over a sample's tokens of log p_model − log p_reference at the sampling temperature,
    /// averaged over samples: the KL of the sampling policy from `reference`, estimated on its
    /// own samples.
    public static func meanKL(_ samples: [Sample], reference: TransformerModel, temperature: Float) -> Double {
        var sum = 0.0
        for s in samples where !s.tokens.isEmpty {
            let layout = PromptResponseBatch(prompts: [s.promptTokens], responses: [s.tokens], width: s.tokens.count, pad: 0)
            let acts = Activations(config: reference.config, batch: 1, length: layout.t, inferenceOnly: true)
            acts.logitWindow = layout.logitWindow
            reference.forward(layout.batch([0]), acts)
            let lp = LogitHeads.targetLogProbs(acts, targets: layout.targets([0]), temperature: temperature)
            for j in 0..<s.tokens.count { sum += Double(s.logProbs[j] - lp[layout.p + j - 1]) }
        }
        return samples.isEmpty ? .nan : sum / Double(samples.count)
    }
}

/// What a judge scores: higher is better.
public enum Judge {
    /// The run's reward model, normalised as it was registered: prompt + completion (with EOS
    /// when it ended) read at the last token.
    case reward(PretrainedModel)
    /// Any scoring of the completion's text (the lexicon labeler's, for one).
    case text(name: String, (String) -> Double)
    /// The longer completion wins (in tokens): a check for length bias.
    case length

    public var name: String {
        switch self {
        case .reward: return "reward"
        case .text(let name, _): return name
        case .length: return "length"
        }
    }

    /// Scores of each sample.
    public func scores(_ samples: [Sample]) throws -> [Double] {
        switch self {
        case .reward(let rm):
            let runner = ScalarHeadRunner(model: rm.model, rows: 16)
            let gain = rm.annotations.rewardGain ?? 1, bias = rm.annotations.rewardBias ?? 0, n = rm.model.config.nCtx
            // The reward model's own tokenizer and template read the text (it may differ from the policies').
            let seqs = try samples.map { s -> [Int32] in
                var body = rm.tokenizer.encode(s.text, allowSpecial: false)
                if s.finished, let eos = rm.annotations.stopTokens(rm.tokenizer).first { body.append(eos) }
                let q = try rm.annotations.promptIds(s.prompt, tokenizer: rm.tokenizer) + body
                return q.count > n ? Array(q.suffix(n)) : q
            }
            return runner.scores(seqs).map { Double(gain * $0 + bias) }
        case .text(_, let f):
            return samples.map { f($0.text) }
        case .length:
            return samples.map { Double($0.tokens.count - ($0.finished ? 1 : 0)) }
        }
    }
}
