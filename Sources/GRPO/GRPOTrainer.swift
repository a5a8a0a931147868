import Foundation
import TransformerCore

/// The rewards of one iteration's completions, by source.
public struct RewardBreakdown: Sendable {
    /// (source, weight, one reward per completion), in the order of `--reward`.
    public var terms: [(source: String, weight: Double, values: [Double])]

    public init(terms: [(source: String, weight: Double, values: [Double])]) { self.terms = terms }

    /// The weighted sum of each completion's rewards.
    public var total: [Double] {
        guard let n = terms.first?.values.count else { return [] }
        return (0..<n).map { i in terms.reduce(0) { $0 + $1.weight * $1.values[i] } }
    }
}

/// Scores an iteration's completions: `rows[i]` is the index into the iteration's prompts of
/// completion i, `responses[i]` its tokens (ending in EOS when `finished[i]`). Throws when a
/// source fails (a reward program's error), which ends the iteration with nothing kept.
public typealias GRPOScorer = (_ rows: [Int], _ responses: [[Int32]], _ finished: [Bool]) throws -> RewardBreakdown

/// One GRPO iteration's outputs.
public struct GRPOIteration: Sendable {
    /// Metric name → value, under TRL's GRPO names.
    public var metrics: [(String, Double)] = []
    /// Every completion: the prompt it answers (an index into the iteration's prompts), its
    /// tokens, whether it stopped at EOS, and its total reward.
    public var completions: [(row: Int, response: [Int32], finished: Bool, reward: Double)] = []
    public func metric(_ name: String) -> Double? { metrics.first { $0.0 == name }?.1 }
}

/// GRPO and its variants as TRL's `GRPOTrainer` runs them, on one process: each iteration samples
/// K completions of each prompt from the policy, scores them, turns the scores into advantages
/// within each prompt's group, and takes μ optimiser steps on the clipped surrogate (with the
/// k3 KL penalty to the reference when β ≠ 0) over the completions' tokens, each step over the
/// whole batch in micro-batches whose gradients accumulate. No value model. Independent of the
/// run database (GRPOStage does the storage).
///
/// The old log-probabilities of the ratio are the policy's at the first step, which sees the
/// weights that sampled: its forward pass computes them (no separate pass), so the first
/// step's ratio is exactly 1, as TRL's is when μ = 1.
public final class GRPOTrainer {
    public let policy: TransformerModel
    /// The frozen reference; nil when β = 0 (no reference pass).
    public let reference: TransformerModel?
    public let settings: GRPOConfig
    public let pad: Int32
    /// Every token that ends a completion.
    public let stopTokens: [Int32]
    /// Iterations done.
    public var iteration = 0
    /// The generator for prompt order and sampling.
    public var rng: SeededRandom
    public let optimizer: AdamW
    public let scorer: GRPOScorer
    private let generator: Generator
    private let policyActs: ActivationSets
    private let referenceActs: ActivationSets
    /// What each of the last iteration's μ steps added up (its first step's ratios are exactly 1).
    public private(set) var lastSteps: [GRPOMath.LossStats] = []
    /// Seconds of each phase of the last iteration: generation, scoring, reference, update.
    public private(set) var profile: [(String, Double)] = []

    /// Where the last iteration's generation spent its time (prefill and decode steps).
    public var generationTiming: GenerationTiming { generator.lastTiming }

    /// Optimiser steps of the whole run (for the linear learning-rate decay).
    public var totalSteps: Int { settings.iterations * settings.numIterations }

    public init(
        policy: TransformerModel, reference: TransformerModel?, stopTokens: [Int32], pad: Int32, settings: GRPOConfig,
        scorer: @escaping GRPOScorer
    ) {
        precondition(!stopTokens.isEmpty, "a completion needs a token to stop at")
        precondition(reference.map { $0.config == policy.config && $0.lora == nil } ?? true, "the reference is the policy's shape, unadapted")
        precondition(settings.beta == 0 || reference != nil, "β ≠ 0 needs a reference")
        self.policy = policy; self.reference = reference
        self.stopTokens = stopTokens; self.pad = pad; self.settings = settings; self.scorer = scorer
        rng = SeededRandom(seed: settings.seed)
        optimizer = AdamW(training: policy, config: AdamWConfig(learningRate: settings.learningRate, eps: settings.adamEps, weightDecay: 0))
        generator = Generator(model: policy)
        policyActs = ActivationSets(config: policy.config)
        referenceActs = ActivationSets(config: policy.config, inferenceOnly: true)
    }

    /// The learning rate of optimiser step `step` (0-based): linear decay to 0.
    func learningRate(step: Int) -> Float {
        LearningRateSchedule(kind: .linear, peak: settings.learningRate, totalSteps: totalSteps).rate(at: step)
    }

    /// One iteration on these prompts (token ids, already templated): each is sampled K times.
    public func step(prompts: [[Int32]]) throws -> GRPOIteration {
        let s = settings, k = s.group, width = s.responseLength
        let rows = prompts.indices.flatMap { [Int](repeating: $0, count: k) }
        let n = rows.count, micro = s.rowsPerPass
        var clock: [String: Double] = [:]
        func timed<T>(_ key: String, _ body: () throws -> T) rethrows -> T {
            let t = Date()
            defer { clock[key, default: 0] += Date().timeIntervalSince(t) }
            return try body()
        }

        // 1. Sampling: K completions of each prompt, truncated after the first stop token.
        let gens = timed("generation") {
            generator.generate(
                prompts: rows.map { prompts[$0] }, maxNewTokens: width, settings: SamplingSettings(temperature: s.temperature),
                stopTokens: stopTokens, pad: pad, rng: &rng)
        }
        let responses = gens.map(\.tokens), finished = gens.map { $0.finishReason == .eos }

        // 2. Rewards and advantages.
        let rewards = try timed("scoring") { try scorer(rows, responses, finished) }
        precondition(rewards.terms.allSatisfy { $0.values.count == n }, "one reward per completion from every source")
        let total = rewards.total
        let adv = GRPOMath.advantages(total, group: k, kind: s.advantage, scale: s.scaleRewards)

        // 3. The reference's log-probabilities (only for the KL penalty).
        // The passes run the completions in order of length, each padded only to its own longest
        // prompt and completion. Which completions share a pass changes only the order in which
        // the gradients add up: the loss weights below follow the micro-batches of `rows`' order.
        let order = (0..<n).sorted {
            (prompts[rows[$0]].count, responses[$0].count, $0) < (prompts[rows[$1]].count, responses[$1].count, $1)
        }
        let passes = stride(from: 0, to: n, by: micro).map { Array(order[$0..<min($0 + micro, n)]) }
        let layouts = passes.map { pass in
            PromptResponseBatch(
                prompts: pass.map { prompts[rows[$0]] }, responses: pass.map { responses[$0] },
                width: max(1, pass.map { responses[$0].count }.max()!), pad: pad)
        }
        let room = layouts.map(\.t).max()!
        /// (pass rows, width) response order from per-position values: position P + j − 1
        /// predicts response token j.
        func responseOrder(_ x: [Float], _ layout: PromptResponseBatch) -> [Float] {
            var out = [Float](repeating: 0, count: layout.rows * width)
            for r in 0..<layout.rows {
                for j in 0..<layout.lengths[r] { out[r * width + j] = x[r * layout.t + layout.p + j - 1] }
            }
            return out
        }
        /// A pass's rows of an (n, width) array, and back.
        func rowsOf(_ x: [Float], _ pass: [Int]) -> [Float] { pass.flatMap { x[$0 * width..<($0 + 1) * width] } }
        func setRows(_ x: inout [Float], _ pass: [Int], _ rows: [Float]) {
            for (r, i) in pass.enumerated() { x.replaceSubrange(i * width..<(i + 1) * width, with: rows[r * width..<(r + 1) * width]) }
        }
        var refLogprobs: [Float]?
        if let reference, s.beta != 0 {
            refLogprobs = timed("reference") {
                var out = [Float](repeating: 0, count: n * width)
                for (pass, layout) in zip(passes, layouts) {
                    let local = Array(0..<pass.count)
                    let a = referenceActs.shaped(rows: pass.count, length: layout.t, room: room)
                    a.logitWindow = layout.logitWindow
                    reference.forward(layout.batch(local), a)
                    let lp = LogitHeads.targetLogProbs(a, targets: layout.targets(local), temperature: s.temperature)
                    setRows(&out, pass, responseOrder(lp, layout))
                }
                return out
            }
        }

        // 4. μ optimiser steps over the whole batch, micro-batch by micro-batch.
        let counts = zip(responses, finished).map { response, done in s.maskTruncated && !done ? 0 : response.count }
        let weights = GRPOMath.tokenWeights(counts: counts, loss: s.loss, microBatch: micro, maxLength: width)
        var old = [Float](repeating: 0, count: n * width)
        var stepStats: [GRPOMath.LossStats] = [], gradNorm = 0.0, lastLR: Float = 0
        timed("update") {
            for step in 0..<s.numIterations {
                policy.zeroGradients()
                var stats = GRPOMath.LossStats()
                for (pass, layout) in zip(passes, layouts) {
                    let local = Array(0..<pass.count)
                    let a = policyActs.shaped(rows: pass.count, length: layout.t, room: room), batch = layout.batch(local)
                    let targets = layout.targets(local)
                    // Logits only where they predict completion tokens, as TRL's logits_to_keep.
                    a.logitWindow = layout.logitWindow
                    policy.forward(batch, a)
                    let (lp, ent) = LogitHeads.targetLogProbsAndEntropies(a, targets: targets, temperature: s.temperature)
                    let logprobs = responseOrder(lp, layout), entropy = responseOrder(ent, layout)
                    // The first step's weights sampled the completions: they are the old policy.
                    if step == 0 { setRows(&old, pass, logprobs) }
                    let (grad, st) = GRPOMath.surrogate(
                        logprobs: logprobs, old: rowsOf(old, pass), ref: refLogprobs.map { rowsOf($0, pass) }, entropy: entropy,
                        advantages: pass.map { adv.values[$0] }, counts: pass.map { counts[$0] }, weights: pass.map { weights[$0] },
                        width: width, epsilonLow: s.epsilon, epsilonHigh: s.epsilonHighOrLow, beta: s.beta)
                    stats.merge(st)
                    var dLogProb = [Float](repeating: 0, count: pass.count * layout.t)
                    for r in 0..<pass.count {
                        for j in 0..<layout.lengths[r] { dLogProb[r * layout.t + layout.p + j - 1] = grad[r * width + j] }
                    }
                    LogitHeads.logitGradient(a, targets: targets, temperature: s.temperature, dLogProb: dLogProb, dEntropy: nil)
                    policy.backward(batch, a, fromLogits: true)
                }
                stepStats.append(stats)
                gradNorm += Double(clipGradientNorm(policy.trainableGradients, maxNorm: s.maxGradNorm))
                lastLR = learningRate(step: iteration * s.numIterations + step)
                optimizer.update(params: policy.trainableParameters, grads: policy.trainableGradients, lr: lastLR)
            }
        }

        // 5. Metrics, under TRL's names; the update's are the mean of its μ steps' (as TRL
        // averages what it logged between two logging steps).
        let mu = Double(s.numIterations)
        lastSteps = stepStats
        var result = GRPOIteration()
        let lengths = responses.map { Double($0.count) }, terminated = zip(lengths, finished).filter { $0.1 }.map(\.0)
        let (rewardMean, rewardStd) = GRPOMath.meanStd(total[...])
        result.metrics = [
            ("reward", rewardMean), ("reward_std", rewardStd), ("frac_reward_zero_std", adv.fractionZeroStd),
            ("completions/mean_length", lengths.reduce(0, +) / Double(n)), ("completions/min_length", lengths.min()!),
            ("completions/max_length", lengths.max()!),
            ("completions/clipped_ratio", Double(finished.filter { !$0 }.count) / Double(n)),
            ("completions/mean_terminated_length", terminated.isEmpty ? 0 : terminated.reduce(0, +) / Double(terminated.count)),
            ("completions/min_terminated_length", terminated.min() ?? 0), ("completions/max_terminated_length", terminated.max() ?? 0),
        ]
        for t in rewards.terms {
            let (mean, std) = GRPOMath.meanStd(t.values[...])
            result.metrics += [("rewards/\(t.source)/mean", mean), ("rewards/\(t.source)/std", std)]
        }
        let perStep = stepStats.map { $0.metrics(withKL: s.beta != 0) }
        result.metrics += perStep[0].indices.map { m in (perStep[0][m].0, perStep.reduce(0) { $0 + $1[m].1 } / mu) }
        result.metrics += [("grad_norm", gradNorm / mu), ("learning_rate", Double(lastLR))]
        profile = ["generation", "scoring", "reference", "update"].map { ($0, clock[$0] ?? 0) }
        result.metrics += profile.map { ("time/\($0.0)_s", $0.1) }
        result.completions = (0..<n).map { (rows[$0], responses[$0], finished[$0], total[$0]) }
        iteration += 1
        return result
    }

    /// Whether every trained parameter (every weight, or the adapters) is finite.
    public func parametersAreFinite() -> Bool {
        let b = policy.trainableParameters
        var acc: Float = 0
        for i in 0..<b.count { acc += b.pointer[i] * 0 }
        return acc.isFinite
    }
}
