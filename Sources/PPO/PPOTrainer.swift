import Foundation
import TransformerCore

/// One PPO iteration's outputs.
public struct IterationResult: Sendable {
    /// Metric name → value, in the RLHF ecosystem's names.
    public var metrics: [(String, Double)] = []
    /// A few rollouts: (row, response tokens, score, finished).
    public var samples: [(row: Int, response: [Int32], score: Float, finished: Bool)] = []
    public func metric(_ name: String) -> Double? { metrics.first { $0.0 == name }?.1 }
}

/// PPO as in lm-human-preferences and "The N Implementation Details of RLHF with PPO": rollout
/// with the policy, per-token KL penalty to a frozen reference, a scalar score at the last token,
/// GAE, whitened advantages, and epochs × minibatches of clipped policy and value updates with an
/// entropy bonus. Independent of the run database (PPOStage does the storage).
public final class PPOTrainer {
    public let policy: TransformerModel, reference: TransformerModel, value: TransformerModel
    public let settings: PPOConfig
    public let eos: Int32, pad: Int32
    /// Every token that ends a response (`eos` and, for Llama 3 Instruct, the others).
    public let stopTokens: [Int32]
    /// KL coefficient β (adapted when a target KL is set).
    public var beta: Float
    /// Iterations done.
    public var iteration = 0
    /// The generator for prompts order, sampling and minibatch shuffles.
    public var rng: SeededRandom
    public let policyOptimizer: AdamW, valueOptimizer: AdamW
    /// Scores (prompt, response) pairs; responses end with EOS when finished.
    public let scorer: ([[Int32]], [[Int32]]) -> [Float]
    private let policyActs: ActivationSets
    private let referenceActs: ActivationSets
    private let valueActs: ActivationSets
    private let generator: Generator
    /// Seconds per phase of the last iteration (rollout and update), for `rlhf bench --only ppo`.
    public private(set) var profile: [(String, Double)] = []
    private var clock: [String: Double] = [:]
    private func timed<T>(_ key: String, _ body: () -> T) -> T { addTime(&clock, key, body) }

    /// Adds `wall` seconds to `clock`, shared between the phases in proportion to the core time
    /// each took in `parts` (the clocks of parts that ran at once).
    private func distribute(_ wall: Double, over parts: [String: Double]...) {
        let core = parts.reduce(into: [String: Double]()) { $0.merge($1, uniquingKeysWith: +) }
        let total = core.values.reduce(0, +)
        for (k, v) in core { clock[k, default: 0] += total > 0 ? wall * v / total : 0 }
    }

    /// Whether the models' passes run as isolated parts, one per core (the rollout's reference
    /// and reward beside its policy and value passes; each minibatch's policy update beside its
    /// value update): when the models are small enough that their kernels' per-product
    /// synchronisation would dominate (the same bound as the batch-split decoder), and there are
    /// two cores to use.
    var isolateModelPasses: Bool {
        isolateModelPassesOverride
            ?? (Parallel.threadCount >= 2 && max(policy.layout.count, value.layout.count) * 4 <= Generator.batchSplitBytes)
    }
    /// Forces `isolateModelPasses` on or off (tests compare the two).
    var isolateModelPassesOverride: Bool?

    /// Bytes of what the trainer keeps alive, by kind: the models it holds (the reward model
    /// belongs to the scorer; a model sharing another's weights counts once, and a value model
    /// sharing the reward model's counts nothing here), the trained parameters' gradients and
    /// AdamW moments, LoRA adapters, and activations (the forward/backward sets of each model
    /// and the generator's cache and buffers). For `rlhf bench --only ppo-memory`.
    public var memoryBreakdown: [(String, Int)] {
        let acts = [policyActs, referenceActs, valueActs].reduce(0) { $0 + $1.floatCount }
        let weightBytes =
            policy.weightBytes + (reference.sharesWeights || policy.sharesWeights ? 0 : reference.weightBytes)
            + (value.sharesWeights ? 0 : value.weightBytes)
        let adapters = [policy, value].reduce(0) { $0 + ($1.lora?.parameters.count ?? 0) }
        return [
            (
                policy.sharesWeights || reference.sharesWeights
                    ? "policy and reference (one base), value parameters" : "policy, reference, value parameters",
                weightBytes
            ),
            ("LoRA adapters (policy, value)", 4 * adapters),
            ("gradients (policy, value)", 4 * (policy.trainableGradients.count + value.trainableGradients.count)),
            (
                "AdamW moments (policy, value)",
                4 * (policyOptimizer.m.count + policyOptimizer.v.count + valueOptimizer.m.count + valueOptimizer.v.count)
            ),
            ("activations (policy, reference, value)", 4 * acts),
            ("generation (KV cache, buffers)", 4 * generator.heldFloatCount),
        ]
    }

    /// Total optimiser steps of the whole run (for the linear learning-rate decay).
    public var totalUpdates: Int { settings.iterations * settings.ppoEpochs * settings.minibatches }

    public init(
        policy: TransformerModel, reference: TransformerModel, value: TransformerModel, eos: Int32, stopTokens: [Int32]? = nil, pad: Int32,
        settings: PPOConfig,
        scorer: @escaping ([[Int32]], [[Int32]]) -> [Float]
    ) {
        precondition(value.hasScalarHead, "the value model needs a scalar head")
        precondition(policy.config == reference.config, "policy and reference must share a configuration")
        self.policy = policy; self.reference = reference; self.value = value
        self.eos = eos; self.stopTokens = stopTokens ?? [eos]; self.pad = pad; self.settings = settings; self.scorer = scorer
        beta = settings.klCoef
        rng = SeededRandom(seed: settings.seed)
        precondition(reference.lora == nil, "the reference is never adapted")
        policyOptimizer = AdamW(training: policy, config: AdamWConfig(learningRate: settings.learningRate, eps: settings.adamEps, weightDecay: 0))
        valueOptimizer = AdamW(
            training: value,
            config: AdamWConfig(
                learningRate: settings.valueLearningRate ?? settings.learningRate,
                eps: settings.adamEps, weightDecay: 0))
        generator = Generator(model: policy)
        policyActs = ActivationSets(config: policy.config)
        referenceActs = ActivationSets(config: reference.config, inferenceOnly: true)
        valueActs = ActivationSets(config: value.config)
    }

    /// Rows of token sequences: left-padded prompts of width P followed by responses of width R.
    typealias Layout = PromptResponseBatch

    private func policyForward(_ model: TransformerModel, _ layout: Layout, _ rows: [Int]) -> (Activations, TokenBatch) {
        let b = layout.batch(rows)
        // the reference only ever runs forward
        let a =
            model === reference
            ? referenceActs.shaped(rows: rows.count, length: layout.t)
            : policyActs.shaped(rows: rows.count, length: layout.t)
        // Logits only where they predict response tokens.
        a.logitWindow = layout.logitWindow
        model.forward(b, a)
        return (a, b)
    }

    private func valueForward(_ layout: Layout, _ rows: [Int]) -> (Activations, TokenBatch) {
        let b = layout.batch(rows)
        let a = valueActs.shaped(rows: rows.count, length: layout.t)
        value.forward(b, a, computeLogits: false)
        return (a, b)
    }

    /// The learning rate of optimiser step `update` (0-based): linear decay to 0.
    func learningRate(_ peak: Float, update: Int) -> Float {
        peak * max(0, 1 - Float(update) / Float(max(1, totalUpdates)))
    }

    /// One iteration on these prompts (token ids, already templated).
    public func step(prompts: [[Int32]]) -> IterationResult {
        let s = settings, r = s.responseLength, bsz = prompts.count
        let mbRows = max(1, bsz / s.minibatches)
        var result = IterationResult()
        let t0 = Date()
        clock = [:]

        // 1. Rollout.
        let gens = timed("generate") {
            generator.generate(
                prompts: prompts, maxNewTokens: r, settings: SamplingSettings(temperature: s.temperature),
                stopTokens: stopTokens, pad: pad, rng: &rng)
        }
        let responses = gens.map(\.tokens)
        let finished = gens.map { $0.finishReason == .eos }
        let layout = Layout(prompts: prompts, responses: responses, width: r, pad: pad)
        let lengths = layout.lengths
        var logprobs = [Float](repeating: 0, count: bsz * r), refLogprobs = logprobs, values = logprobs, entropy = logprobs
        // Reference, policy and value passes over the rollout's minibatches, and the reward. For
        // small models they run as two isolated parts, one per core: the reference passes and the
        // reward on one, the policy and value passes on the other. (The scorer may therefore run
        // on a pool thread; it is never called twice at once.)
        let starts = Array(stride(from: 0, to: bsz, by: mbRows))
        var scores: [Float] = []
        let referencePart = { (time: (String, () -> Void) -> Void) in
            for start in starts {
                let rows = Array(start..<min(start + mbRows, bsz))
                time("reference") {
                    let (ra, _) = self.policyForward(self.reference, layout, rows)
                    layout.gather(
                        LogitHeads.targetLogProbs(ra, targets: layout.targets(rows), temperature: s.temperature),
                        rows, into: &refLogprobs)
                }
            }
            time("reward") { scores = self.scorer(prompts, responses) }
        }
        let policyPart = { (time: (String, () -> Void) -> Void) in
            for start in starts {
                let rows = Array(start..<min(start + mbRows, bsz))
                time("policy logprobs") {
                    let (pa, _) = self.policyForward(self.policy, layout, rows)
                    let (lp, ent) = LogitHeads.targetLogProbsAndEntropies(pa, targets: layout.targets(rows), temperature: s.temperature)
                    layout.gather(lp, rows, into: &logprobs)
                    layout.gather(ent, rows, into: &entropy)
                }
                time("value") {
                    let (va, _) = self.valueForward(layout, rows)
                    layout.gather(Array(UnsafeBufferPointer(start: va.values.pointer, count: rows.count * layout.t)), rows, into: &values)
                }
            }
        }
        var clock0: [String: Double] = [:], clock1: [String: Double] = [:]
        let scoringStart = Date()
        if isolateModelPasses {
            // Each part writes only its own arrays and clock.
            Parallel.isolated(2) { w in
                if w == 0 {
                    referencePart { key, body in addTime(&clock0, key, body) }
                } else {
                    policyPart { key, body in addTime(&clock1, key, body) }
                }
            }
        } else {
            let time = { (key: String, body: () -> Void) in addTime(&clock0, key, body) }
            referencePart(time)
            policyPart(time)
        }
        distribute(Date().timeIntervalSince(scoringStart), over: clock0, clock1)
        if let penalty = s.missingEOSPenalty { for b in 0..<bsz where !finished[b] { scores[b] = penalty } }
        let rolloutTime = Date().timeIntervalSince(t0)

        // 2–3. Rewards per token, GAE, whitening.
        var rewards = PPOMath.tokenRewards(logprobs: logprobs, refLogprobs: refLogprobs, scores: scores, lengths: lengths, width: r, beta: beta)
        if s.whitenRewards { rewards = PPOMath.whiten(rewards, lengths: lengths, width: r, shiftMean: false) }
        let (rawAdv, returns) = PPOMath.gae(rewards: rewards, values: values, lengths: lengths, width: r, gamma: s.gamma, lambda: s.lambda)
        let advantages = PPOMath.whiten(rawAdv, lengths: lengths, width: r)
        var klSum = 0.0, entSum = 0.0
        for b in 0..<bsz {
            for j in 0..<lengths[b] { klSum += Double(logprobs[b * r + j] - refLogprobs[b * r + j]); entSum += Double(entropy[b * r + j]) }
        }
        let meanKL = klSum / Double(bsz), meanScore = Double(scores.reduce(0, +)) / Double(bsz)

        // 4. Update.
        let t1 = Date()
        var pgLoss = 0.0, vfLoss = 0.0, clipfrac = 0.0, vclipfrac = 0.0, approxkl = 0.0, ratioMean = 0.0, ratioMax = 0.0, updEntropy = 0.0
        var updates = 0
        var lastLR: Float = 0
        for _ in 0..<s.ppoEpochs {
            var order = Array(0..<bsz)
            rng.shuffle(&order)
            for mb in 0..<s.minibatches {
                let rows = Array(order[(mb * mbRows)..<min((mb + 1) * mbRows, bsz)])
                if rows.isEmpty { continue }
                let t = layout.t
                // Flat per-position arrays of this minibatch.
                var old = [Float](repeating: 0, count: rows.count * t), adv = old, oldV = old, ret = old
                var mask = [Bool](repeating: false, count: rows.count * t)
                for (k, row) in rows.enumerated() {
                    for j in 0..<lengths[row] {
                        let i = k * t + layout.p + j - 1
                        old[i] = logprobs[row * r + j]; adv[i] = advantages[row * r + j]
                        oldV[i] = values[row * r + j]; ret[i] = returns[row * r + j]; mask[i] = true
                    }
                }
                let targets = layout.targets(rows)
                let globalUpdate = iteration * s.ppoEpochs * s.minibatches + updates
                // The two models' updates are independent: for small models they run at once,
                // one per core (each with single-threaded kernels), which beats splitting every
                // small product between the cores. Each part keeps its own phase clock.
                var policyClock: [String: Double] = [:], valueClock: [String: Double] = [:]
                var policyLoss: PPOMath.PolicyLoss?, valueLoss: (loss: Double, gradient: [Float], clipFraction: Double)?
                var ents: [Float] = [], n: Float = 0
                let policyPart = {
                    // Policy: clipped surrogate − c_ent·entropy.
                    let (pa, pb) = addTime(&policyClock, "update forward") { self.policyForward(self.policy, layout, rows) }
                    let (newLogprobs, e) = addTime(&policyClock, "update forward") {
                        LogitHeads.targetLogProbsAndEntropies(pa, targets: targets, temperature: s.temperature)
                    }
                    ents = e
                    let loss = PPOMath.policyLoss(newLogprobs: newLogprobs, oldLogprobs: old, advantages: adv, mask: mask, clip: s.clipRange)
                    policyLoss = loss
                    n = Float(mask.reduce(0) { $0 + ($1 ? 1 : 0) })
                    let dEnt = mask.map { $0 ? -s.entropyCoef / n : 0 }
                    addTime(&policyClock, "update backward") {
                        LogitHeads.logitGradient(pa, targets: targets, temperature: s.temperature, dLogProb: loss.gradient, dEntropy: dEnt)
                        self.policy.zeroGradients()
                        self.policy.backward(pb, pa, fromLogits: true)
                    }
                    addTime(&policyClock, "update optimizer") {
                        clipGradientNorm(self.policy.trainableGradients, maxNorm: s.maxGradNorm)
                        self.policyOptimizer.update(
                            params: self.policy.trainableParameters, grads: self.policy.trainableGradients,
                            lr: self.learningRate(s.learningRate, update: globalUpdate))
                    }
                }
                let valuePart = {
                    // Value: c_v · clipped value loss.
                    let (va, vb) = addTime(&valueClock, "update forward") { self.valueForward(layout, rows) }
                    let newV = Array(UnsafeBufferPointer(start: va.values.pointer, count: rows.count * t))
                    let loss = PPOMath.valueLoss(newValues: newV, oldValues: oldV, returns: ret, mask: mask, clip: s.clipRangeValue)
                    valueLoss = loss
                    addTime(&valueClock, "update backward") {
                        self.value.zeroGradients()
                        self.value.backward(vb, va, fromLogits: false, dValues: loss.gradient.map { $0 * s.valueCoef })
                    }
                    addTime(&valueClock, "update optimizer") {
                        clipGradientNorm(self.value.trainableGradients, maxNorm: s.maxGradNorm)
                        self.valueOptimizer.update(
                            params: self.value.trainableParameters, grads: self.value.trainableGradients,
                            lr: self.learningRate(s.valueLearningRate ?? s.learningRate, update: globalUpdate))
                    }
                }
                let partsStart = Date()
                if isolateModelPasses {
                    Parallel.isolated(2) { w in if w == 0 { policyPart() } else { valuePart() } }
                } else {
                    policyPart()
                    valuePart()
                }
                distribute(Date().timeIntervalSince(partsStart), over: policyClock, valueClock)
                lastLR = learningRate(s.learningRate, update: globalUpdate)
                let (pl, vl) = (policyLoss!, valueLoss!)

                var entMean = 0.0
                for i in 0..<mask.count where mask[i] { entMean += Double(ents[i]) }
                entMean /= Double(max(1, n))
                if updates == 0 {
                    result.metrics.append(("policy/first_ratio_mean", pl.ratioMean))
                    result.metrics.append(("policy/first_approxkl", pl.approxKL))
                    result.metrics.append(("policy/first_clipfrac", pl.clipFraction))
                }
                pgLoss += pl.loss; vfLoss += vl.loss; clipfrac += pl.clipFraction; vclipfrac += vl.clipFraction
                approxkl += pl.approxKL; ratioMean += pl.ratioMean; ratioMax = max(ratioMax, pl.ratioMax); updEntropy += entMean
                updates += 1
            }
        }
        let u = Double(max(1, updates))
        let updateTime = Date().timeIntervalSince(t1)
        profile = ["generate", "reference", "reward", "value", "policy logprobs", "update forward", "update backward", "update optimizer"].map {
            ($0, clock[$0] ?? 0)
        }
        profile.append(("update other", updateTime - ["update forward", "update backward", "update optimizer"].reduce(0) { $0 + (clock[$1] ?? 0) }))
        let (vMean, _) = PPOMath.maskedMeanVariance(values, lengths: lengths, width: r)
        let (retMean, _) = PPOMath.maskedMeanVariance(returns, lengths: lengths, width: r)
        let total = pgLoss / u + Double(s.valueCoef) * vfLoss / u - Double(s.entropyCoef) * updEntropy / u
        result.metrics += [
            ("objective/kl", meanKL), ("objective/kl_coef", Double(beta)), ("objective/entropy", entSum / Double(bsz)),
            ("objective/scores", meanScore), ("objective/rlhf_reward", meanScore - Double(beta) * meanKL),
            ("policy/approxkl", approxkl / u), ("policy/clipfrac", clipfrac / u), ("policy/ratio_mean", ratioMean / u),
            ("policy/ratio_max", ratioMax), ("loss/policy", pgLoss / u), ("loss/value", vfLoss / u), ("loss/entropy", updEntropy / u),
            ("loss/total", total), ("val/clipfrac", vclipfrac / u),
            ("val/explained_variance", PPOMath.explainedVariance(values: values, returns: returns, lengths: lengths, width: r)),
            ("val/mean", vMean), ("returns/mean", retMean),
            ("response/length_mean", Double(lengths.reduce(0, +)) / Double(bsz)),
            ("response/eos_fraction", Double(finished.filter { $0 }.count) / Double(bsz)),
            ("time/rollout_s", rolloutTime), ("time/update_s", updateTime), ("lr", Double(lastLR)),
        ]
        for b in 0..<min(s.samplesPerIteration, bsz) { result.samples.append((b, responses[b], scores[b], finished[b])) }

        // Adaptive KL controller, after the iteration (as in lm-human-preferences).
        if let target = s.targetKL {
            beta = PPOMath.adaptiveKL(beta: beta, kl: meanKL, target: target, samples: bsz, horizon: s.klHorizon)
        }
        iteration += 1
        return result
    }

    /// Whether every trained parameter (every weight, or the adapters) of policy and value is finite.
    public func parametersAreFinite() -> Bool {
        for m in [policy, value] {
            let b = m.trainableParameters
            var acc: Float = 0
            for i in 0..<b.count { acc += b.pointer[i] * 0 }
            if !acc.isFinite { return false }
        }
        return true
    }
}

/// Runs `body`, adding the seconds it took to `clock[key]`.
private func addTime<T>(_ clock: inout [String: Double], _ key: String, _ body: () -> T) -> T {
    let t = Date()
    let v = body()
    clock[key, default: 0] += Date().timeIntervalSince(t)
    return v
}
