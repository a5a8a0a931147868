import Foundation
import RunStore
import StageKit
import TransformerCore

/// Validation figures of one epoch.
public struct EpochResult: Equatable, Sendable {
    public var epoch: Int
    public var trainLoss: Double
    public var validationLoss: Double
    public var validationAccuracy: Double
    public var validationMargin: Double
}

/// What `rlhf train-reward` did.
public struct RewardReport: Sendable {
    public var stageRunId: Int64
    public var trainRankings = 0, validationRankings = 0, trainPairs = 0, validationPairs = 0
    /// Of the rankings, how many are human judgments of two policies (`--with-judgments`).
    public var judgments = 0
    public var trainPrompts: Set<Int64> = [], validationPrompts: Set<Int64> = []
    public var epochs: [EpochResult] = []
    public var bestEpoch = 0
    public var gain: Float = 1, bias: Float = 0
    /// The samples the normalisation used, and their normalised mean and standard deviation.
    public var normalizationSamples = 0
    public var model: ModelRecord?
    public var interrupted = false
    public var best: EpochResult? { epochs.first { $0.epoch == bestEpoch } }
}

/// Reward-model training on the run's comparisons (InstructGPT, lm-human-preferences): a GPT-2
/// with a scalar head read at the last token, Bradley–Terry loss with all pairs of a ranking in
/// one batch element, a validation split by prompt, the best epoch by validation accuracy, and a
/// gain and bias that give the base policy's completions on the train prompts mean 0 and std 1.
public enum RewardStage {
    /// Progress: (step, total steps, training loss of the step).
    public typealias Progress = (Int, Int, Double) -> Void

    public static func run(
        store: RunStore, options o: RewardConfig, progress: Progress? = nil,
        epochDone: ((EpochResult) -> Void)? = nil, shouldStop: () -> Bool = { false }
    ) throws -> RewardReport {
        if let problem = o.validationError { throw StoreError(problem) }
        // The products in the settings' precision until the stage ends.
        let outerPrecision = Kernels.precision
        Kernels.precision = o.precision
        defer { Kernels.precision = outerPrecision }
        let (initRecord, initChain) = try resolveInit(store: store, spec: o.initModel)
        if o.lora != nil && initRecord == nil {
            throw StoreError(
                "--lora-rank trains adapters over a model registered in the run (the base, or --init ID), not over a folder; import the folder with 'rlhf init --base DIR' first"
            )
        }
        let base = try ModelFolder.load(chain: initChain)
        let policyTemplate = try store.latestModel(role: .policy)?.promptTemplate
        var annotations = base.annotations
        if annotations.promptTemplate == nil { annotations.promptTemplate = policyTemplate }
        annotations.rewardGain = nil; annotations.rewardBias = nil
        let cfg = base.model.config

        let withJudgments = o.withJudgments ?? false
        guard try !store.comparisons().isEmpty || (withJudgments && !store.judgmentComparisons().isEmpty) else {
            throw PreferenceData.noComparisons
        }
        // Stored token ids are valid only for the tokenizer that produced them: the run's own models.
        let examples = try RewardData.examples(
            store: store, tokenizer: base.tokenizer, annotations: annotations, nCtx: cfg.nCtx,
            useStoredTokens: o.initModel == nil || initRecord != nil, withJudgments: withJudgments)
        try PreferenceData.checkSplittable(Set(examples.map(\.promptId)))
        let (train, val) = RewardData.split(examples, fraction: o.validationFraction, seed: o.seed)

        // The reward model: the base network plus a fresh scalar head N(0, 1/√(n_embd+1)), zero bias.
        let model = TransformerModel(config: cfg, scalarHead: true)
        model.copyParameters(from: base.model)
        if !base.model.hasScalarHead {
            var rng = SeededRandom(seed: o.seed ^ 0x4EAD)
            let w = model.tensor("score.weight"), std = 1 / Float(cfg.nEmbd + 1).squareRoot()
            for i in 0..<w.count { w[i] = rng.normal() * std }
            model.tensor("score.bias")[0] = 0
        }
        // LoRA: the network frozen; adapters and a head of their own (starting as the head above) train.
        if let lc = o.lora {
            let lora = try LoRAAdapters(config: lc.resolved(for: cfg.architecture), model: cfg, scalarHead: true)
            lora.initialize(seed: o.seed ^ 0x10AA)
            lora.head!.baseAddress!.update(from: model.tensor("score.weight").baseAddress!, count: cfg.nEmbd)
            lora.head![cfg.nEmbd] = model.tensor("score.bias")[0]
            model.lora = lora
            if o.frozenDType == .bf16 { model.holdProjectionsInBFloat16() }
        } else if o.frozenDType == .bf16 {
            throw StoreError("bfloat16 frozen weights need LoRA: full fine-tuning trains every weight")
        }

        ModelFolder.removeStaleTemporaries(in: store.folder.appendingPathComponent("checkpoints"))
        let runId = try store.beginStageRun(stage: "train-reward", config: o, seed: o.seed)
        var report = RewardReport(stageRunId: runId)
        report.trainRankings = train.count; report.validationRankings = val.count
        report.judgments = examples.filter { $0.judgmentId != nil }.count
        report.trainPairs = train.reduce(0) { $0 + $1.pairs.count }; report.validationPairs = val.reduce(0) { $0 + $1.pairs.count }
        report.trainPrompts = Set(train.map(\.promptId)); report.validationPrompts = Set(val.map(\.promptId))
        try store.failingStageRun(runId) {
            let runner = ScalarHeadRunner(model: model, rows: o.microBatch)
            let opt = AdamW(training: model, config: AdamWConfig(learningRate: o.learningRate, weightDecay: o.weightDecay))
            let stepsPerEpoch = (train.count + o.batch - 1) / o.batch
            let schedule = LearningRateSchedule(kind: .linear, peak: o.learningRate, totalSteps: stepsPerEpoch * o.epochs)
            var rng = SeededRandom(seed: o.seed)
            var best: (accuracy: Double, loss: Double, params: [Float])?
            var step = 0
            epochs: for epoch in 1...o.epochs {
                var order = train
                rng.shuffle(&order)
                var epochLoss = 0.0
                for s in stride(from: 0, to: order.count, by: o.batch) {
                    if shouldStop() { report.interrupted = true; break epochs }
                    let batch = Array(order[s..<min(s + o.batch, order.count)])
                    model.lora?.training = true
                    model.lora?.dropoutSeed = o.seed &* 0x9E37_79B9 &+ UInt64(step)
                    let m = trainStep(batch, runner: runner, margin: o.margin)
                    model.lora?.training = false
                    clipGradientNorm(model.trainableGradients, maxNorm: o.maxGradNorm)
                    let lr = schedule.rate(at: step)
                    opt.update(params: model.trainableParameters, grads: model.trainableGradients, lr: lr)
                    step += 1
                    epochLoss += m.loss * Double(batch.count)
                    guard m.loss.isFinite else { throw StoreError("the training loss became \(m.loss) at step \(step); lower --lr") }
                    try store.logMetrics(
                        stageRunId: runId, step: step,
                        [
                            ("reward/loss", m.loss), ("reward/margin", m.margin),
                            ("reward/accuracy", m.accuracy), ("lr", Double(lr)),
                        ])
                    progress?(step, stepsPerEpoch * o.epochs, m.loss)
                }
                let v = evaluate(val, runner: runner, margin: o.margin)
                let result = EpochResult(
                    epoch: epoch, trainLoss: epochLoss / Double(max(1, train.count)), validationLoss: v.loss,
                    validationAccuracy: v.accuracy, validationMargin: v.margin)
                report.epochs.append(result)
                try store.logMetrics(
                    stageRunId: runId, step: epoch,
                    [
                        ("reward/val_loss", v.loss), ("reward/val_accuracy", v.accuracy),
                        ("reward/val_margin", v.margin), ("reward/epoch_loss", result.trainLoss),
                    ])
                epochDone?(result)
                if best == nil || v.accuracy > best!.accuracy || (v.accuracy == best!.accuracy && v.loss < best!.loss) {
                    best = (v.accuracy, v.loss, model.trainableParameters.array)
                    report.bestEpoch = epoch
                }
            }
            if report.interrupted {
                try store.finishStageRun(runId, status: .interrupted, error: "stopped on request; no reward model was registered")
                return
            }
            // The best epoch, normalised.
            best!.params.withUnsafeBufferPointer { model.trainableParameters.pointer.update(from: $0.baseAddress!, count: $0.count) }
            let samples = try normalizationSamples(
                store: store, tokenizer: base.tokenizer, annotations: annotations, nCtx: cfg.nCtx,
                fallback: train)
            let raw = runner.scores(samples).map(Double.init)
            let mean = raw.reduce(0, +) / Double(raw.count)
            let std = (raw.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(raw.count)).squareRoot()
            report.gain = std > 1e-8 ? Float(1 / std) : 1
            report.bias = Float(-mean) * report.gain
            report.normalizationSamples = samples.count
            annotations.rewardGain = report.gain; annotations.rewardBias = report.bias
            try store.logMetrics(
                stageRunId: runId, step: report.bestEpoch,
                [
                    ("reward/norm_raw_mean", mean), ("reward/norm_raw_std", std),
                    ("reward/best_epoch", Double(report.bestEpoch)),
                ])

            let path = "checkpoints/reward-\(runId)"
            let folder = store.folder.appendingPathComponent(path)
            let weights = try ModelFolder.saveTrained(
                model, tokenizer: base.tokenizer, annotations: annotations,
                baseFolder: initRecord?.path ?? "", to: folder)
            let bestResult = report.best!
            report.model = try store.registerCheckpoint(
                model, role: .reward, path: path, weights: weights, promptTemplate: annotations.promptTemplate,
                parentId: initRecord?.id, stageRunId: runId, step: report.bestEpoch,
                note: String(format: "val_accuracy %.4f, gain %.4g, bias %.4g", bestResult.validationAccuracy, report.gain, report.bias)
                    + (model.lora.map { ", LoRA r=\($0.config.rank)" } ?? ""),
                baseId: model.lora == nil ? nil : initRecord!.id)
            try store.finishStageRun(runId, status: .succeeded)
        }
        return report
    }

    /// Mean loss, margin and accuracy of one step, after accumulating its gradients.
    static func trainStep(_ batch: [RankingExample], runner: ScalarHeadRunner, margin: Float) -> (loss: Double, margin: Double, accuracy: Double) {
        runner.model.zeroGradients()
        var loss = 0.0, marginSum = 0.0, correct = 0, pairs = 0
        let weight = 1 / Float(batch.count)
        for group in microBatches(batch, rows: runner.rows) {
            runner.accumulateGradients(group.flatMap(\.sequences)) { scores in
                var grad: [Float] = []
                var offset = 0
                for ex in group {
                    let r = Array(scores[offset..<(offset + ex.sequences.count)])
                    let (l, g) = RankingLoss.lossAndGradient(rewards: r, pairs: ex.pairs, margin: margin, weight: weight)
                    loss += l / Double(batch.count)
                    for p in ex.pairs {
                        marginSum += Double(r[p.chosen] - r[p.rejected]); pairs += 1
                        if r[p.chosen] > r[p.rejected] { correct += 1 }
                    }
                    grad += g
                    offset += ex.sequences.count
                }
                return grad
            }
        }
        return (loss, marginSum / Double(max(1, pairs)), Double(correct) / Double(max(1, pairs)))
    }

    /// Whole rankings per forward pass, up to `rows` sequences (a ranking larger than that gets
    /// a pass of its own; the runner splits nothing).
    static func microBatches(_ batch: [RankingExample], rows: Int) -> [[RankingExample]] {
        var out: [[RankingExample]] = [], cur: [RankingExample] = [], n = 0
        for ex in batch {
            if n + ex.sequences.count > rows && !cur.isEmpty { out.append(cur); cur = []; n = 0 }
            cur.append(ex); n += ex.sequences.count
        }
        if !cur.isEmpty { out.append(cur) }
        return out
    }

    /// Validation loss (mean over rankings), pair accuracy and mean margin.
    public static func evaluate(_ examples: [RankingExample], runner: ScalarHeadRunner, margin: Float) -> (
        loss: Double, accuracy: Double, margin: Double
    ) {
        guard !examples.isEmpty else { return (.nan, .nan, .nan) }
        let scores = runner.scores(examples.flatMap(\.sequences))
        var offset = 0, loss = 0.0, correct = 0, pairs = 0, marginSum = 0.0
        for ex in examples {
            let r = Array(scores[offset..<(offset + ex.sequences.count)])
            offset += ex.sequences.count
            loss += RankingLoss.lossAndGradient(rewards: r, pairs: ex.pairs, margin: margin).loss
            for p in ex.pairs {
                pairs += 1
                marginSum += Double(r[p.chosen] - r[p.rejected])
                if r[p.chosen] > r[p.rejected] { correct += 1 }
            }
        }
        return (loss / Double(examples.count), Double(correct) / Double(max(1, pairs)), marginSum / Double(max(1, pairs)))
    }

    /// The base policy's completions of the run's train-split prompts (the first policy
    /// registered), or, when it has none, the completions of the training rankings.
    static func normalizationSamples(
        store: RunStore, tokenizer: Tokenizer, annotations: ModelAnnotations, nCtx: Int,
        fallback: [RankingExample]
    ) throws -> [[Int32]] {
        let firstPolicy = try store.models().first { $0.role == .policy }
        var seqs: [[Int32]] = []
        if let p = firstPolicy {
            for prompt in try store.prompts(split: .train) {
                for c in try store.completions(promptId: prompt.id) where c.modelId == p.id {
                    seqs.append(
                        try RewardData.sequence(
                            prompt: prompt.text, completion: c, tokenizer: tokenizer, annotations: annotations,
                            nCtx: nCtx, useStoredTokens: true))
                }
            }
        }
        if seqs.count < 2 { seqs = fallback.flatMap(\.sequences) }
        return seqs
    }

    /// The model to start from and its chain of folders (one, unless it is LoRA adapters).
    static func resolveInit(store: RunStore, spec: String?) throws -> (ModelRecord?, [URL]) {
        if let spec, let id = Int64(spec) {
            guard let m = try store.model(id: id) else { throw StoreError("--init \(spec): the run has no model #\(spec)") }
            return (m, try store.verifiedChain(m))
        }
        if let spec { return (nil, [URL(fileURLWithPath: spec)]) }
        guard let b = try store.latestModel(role: .base) else { throw StoreError("the run has no base model; create it with 'rlhf init'") }
        return (b, try store.verifiedChain(b))
    }
}
