import Foundation
import RunStore
import StageKit
import TransformerCore

/// Progress of a DPO run, for the console.
public enum DPOEvent {
    case started(stageRunId: Int64, resumedAt: Int, totalSteps: Int, train: Int, validation: Int, pairs: Int)
    case reference(done: Int, total: Int)
    case step(Int, DPOStats, lr: Float)
    case epoch(Int, DPOStats)
    case saved(step: Int, policy: ModelRecord)
}

/// What a `rlhf dpo` run did.
public struct DPOReport: Sendable {
    public var stageRunId: Int64 = 0
    public var firstStep = 0, stepsDone = 0, totalSteps = 0
    public var trainRankings = 0, validationRankings = 0
    public var trainPrompts: Set<Int64> = [], validationPrompts: Set<Int64> = []
    /// Validation figures after each epoch (of this process; a resumed run reports its own).
    public var epochs: [(epoch: Int, stats: DPOStats)] = []
    public var interrupted = false
    public var lastPolicy: ModelRecord?
    /// Seconds spent on the reference pass and on training.
    public var referenceSeconds = 0.0, trainSeconds = 0.0
}

/// `rlhf dpo` on a run: direct preference optimisation of the policy on the run's comparisons,
/// against a frozen reference whose log-probabilities are computed once and stored in the stage
/// run. Checkpoints (with the optimiser moments) every `saveEvery` steps, at each epoch's end and
/// on a stop request; `resume` continues the latest unfinished DPO run from its last checkpoint
/// with the same metrics as an uninterrupted run.
public enum DPOStage {
    /// What the stage run stores: the settings and the models they were applied to.
    struct StoredRun: Codable {
        var options: DPOConfig
        var policyModelId: Int64
        var referenceModelId: Int64
    }

    /// What `--resume` needs, stored after each checkpoint.
    struct SavedState: Codable {
        var step: Int
        var policyModelId: Int64
        var optimizer: String
        var optimizerSHA: String
    }

    public static func run(
        store: RunStore, options: DPOConfig, resume: Bool, events: ((DPOEvent) -> Void)? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> DPOReport {
        if let problem = options.validationError { throw StoreError(problem) }
        try store.markInterruptedRuns()
        var config: StoredRun
        var runId: Int64 = 0
        var saved: SavedState?
        if resume {
            (runId, config, saved) = try store.resumableStageRun(
                "dpo", label: "DPO", command: "rlhf dpo", config: StoredRun.self, state: SavedState.self)
        } else {
            let policyId: Int64
            if let id = options.policyModel {
                guard let m = try store.model(id: id) else { throw StoreError("--policy \(id): the run has no model #\(id)") }
                policyId = m.id
            } else {
                guard let p = try store.latestModel(role: .policy) else { throw StoreError("the run has no policy; create it with 'rlhf init'") }
                policyId = p.id
            }
            let refId: Int64
            if let id = options.referenceModel {
                guard let m = try store.model(id: id) else { throw StoreError("--reference \(id): the run has no model #\(id)") }
                refId = m.id
            } else {
                guard let r = try store.latestModel(role: .reference) ?? store.latestModel(role: .base) else {
                    throw StoreError("the run has no reference or base model")
                }
                refId = r.id
            }
            config = StoredRun(options: options, policyModelId: policyId, referenceModelId: refId)
        }
        let o = config.options
        // The products in the run's precision (the stored one when resuming) until it ends.
        let outerPrecision = Kernels.precision
        Kernels.precision = o.precision
        defer { Kernels.precision = outerPrecision }

        func load(_ id: Int64) throws -> (ModelRecord, PretrainedModel) {
            let rec = try store.requireModel(id: id)
            let m = try store.loadModel(rec)
            guard !m.model.hasScalarHead else {
                throw StoreError("model #\(id) is a \(rec.role.rawValue) model with a scalar head, not a language model")
            }
            return (rec, m)
        }
        let (startRec, start) = try load(saved?.policyModelId ?? config.policyModelId)
        let (_, reference) = try load(config.referenceModelId)
        guard start.model.config == reference.model.config, start.tokenizer.tokens == reference.tokenizer.tokens else {
            throw StoreError(
                "the policy (#\(config.policyModelId)) and the reference (#\(config.referenceModelId)) differ in configuration or tokenizer")
        }
        let tok = start.tokenizer, notes = start.annotations
        let policy = start.model

        // Data: the same rankings and prompt split as train-reward.
        let all = try DPOData.examples(store: store, tokenizer: tok, annotations: notes, nCtx: policy.config.nCtx)
        guard !all.isEmpty else { throw PreferenceData.noComparisons }
        let promptIds = Set(all.map(\.promptId))
        try PreferenceData.checkSplittable(promptIds)
        let valPrompts = PreferenceSplit.validationPrompts(promptIds, fraction: o.validationFraction, seed: o.seed)
        let usable = all.filter { !$0.prompt.isEmpty }
        let train = usable.filter { !valPrompts.contains($0.promptId) }, val = usable.filter { valPrompts.contains($0.promptId) }
        guard !train.isEmpty else { throw StoreError("no training rankings are left after the validation split") }
        let stepsPerEpoch = (train.count + o.batch - 1) / o.batch, totalSteps = stepsPerEpoch * o.epochs

        ModelFolder.removeStaleTemporaries(in: store.folder.appendingPathComponent("checkpoints"))
        if runId == 0 {
            runId = try store.beginStageRun(stage: "dpo", config: config, seed: o.seed)
        } else {
            try store.reopenStageRun(runId, afterStep: saved?.step ?? 0)
        }
        var report = DPOReport(stageRunId: runId, firstStep: saved?.step ?? 0, totalSteps: totalSteps)
        report.trainRankings = train.count; report.validationRankings = val.count
        report.trainPrompts = Set(train.map(\.promptId)); report.validationPrompts = Set(val.map(\.promptId))
        events?(
            .started(
                stageRunId: runId, resumedAt: saved?.step ?? 0, totalSteps: totalSteps, train: train.count, validation: val.count,
                pairs: usable.reduce(0) { $0 + $1.pairs.count }))
        try store.failingStageRun(runId) {
            let trainer = DPOTrainer(policy: policy, objective: o.objective, rows: o.microBatch, pad: tok.padId ?? tok.eosId ?? 0)
            // Reference log-probabilities: computed once, stored in the stage run.
            let t0 = Date()
            let refTable = try referenceLogProbs(
                store: store, runId: runId, trainer: trainer, reference: reference.model,
                examples: train + val, events: events)
            report.referenceSeconds = Date().timeIntervalSince(t0)
            func refs(_ exs: [PreferenceExample]) -> [[Double]] { exs.map { $0.completionIds.map { refTable[$0]! } } }

            let opt = AdamW(layout: policy.layout, config: AdamWConfig(learningRate: o.learningRate, weightDecay: o.weightDecay))
            if let s = saved { try OptimizerFile(path: s.optimizer, sha256: s.optimizerSHA).restore(into: opt) }
            let schedule = LearningRateSchedule(kind: .linear, peak: o.learningRate, totalSteps: totalSteps)
            var current = startRec, savedStep = saved?.step ?? 0
            func checkpoint(_ step: Int) throws {
                (current, saved) = try save(
                    store: store, runId: runId, step: step, policy: policy, optimizer: opt, tokenizer: tok, notes: notes,
                    parent: current, previous: saved)
                savedStep = step
                report.lastPolicy = current
                events?(.saved(step: step, policy: current))
            }
            let t1 = Date()
            var step = savedStep
            run: while step < totalSteps {
                let epoch = step / stepsPerEpoch
                // Each epoch's order comes from the seed and the epoch alone, so a resumed run
                // sees the same batches.
                var order = train
                var rng = SeededRandom(seed: o.seed &+ 0xD90 &+ UInt64(epoch))
                rng.shuffle(&order)
                for s in (step - epoch * stepsPerEpoch)..<stepsPerEpoch {
                    if shouldStop() {
                        report.interrupted = true
                        break run
                    }
                    let batch = Array(order[(s * o.batch)..<min((s + 1) * o.batch, order.count)])
                    let stats = trainer.accumulateGradients(batch, reference: refs(batch))
                    guard stats.loss.isFinite else {
                        throw StoreError("the loss became \(stats.loss) at step \(step + 1); the last checkpoint is intact (lower --lr)")
                    }
                    let norm = clipGradientNorm(policy.gradients, maxNorm: o.maxGradNorm)
                    let lr = schedule.rate(at: step)
                    opt.update(params: policy.parameters, grads: policy.gradients, lr: lr)
                    step += 1
                    report.stepsDone += 1
                    try store.logMetrics(
                        stageRunId: runId, step: step,
                        stats.metrics() + [
                            ("grad_norm", Double(norm)), ("lr", Double(lr)),
                            ("epoch", Double(step) / Double(stepsPerEpoch)),
                        ])
                    events?(.step(step, stats, lr: lr))
                    let epochEnd = step % stepsPerEpoch == 0
                    if epochEnd {
                        let v = trainer.evaluate(val, reference: refs(val))
                        try store.logMetrics(stageRunId: runId, step: step, v.metrics(prefix: "eval_"))
                        report.epochs.append((step / stepsPerEpoch, v))
                        events?(.epoch(step / stepsPerEpoch, v))
                    }
                    if epochEnd || step % o.saveEvery == 0 { try checkpoint(step) }
                }
            }
            report.trainSeconds = Date().timeIntervalSince(t1)
            // What a stop request left unsaved is saved, so a resume loses nothing.
            if step > savedStep { try checkpoint(step) }
            try store.finishStageRun(
                runId, status: report.interrupted ? .interrupted : .succeeded,
                error: report.interrupted ? "stopped on request at step \(step); resume with 'rlhf dpo --resume'" : nil)
        }
        return report
    }

    /// The reference's summed log-probability of every completion in `examples`, by completion
    /// id: read from the stage run when an earlier (interrupted) process stored them, else
    /// computed and stored.
    static func referenceLogProbs(
        store: RunStore, runId: Int64, trainer: DPOTrainer, reference: TransformerModel,
        examples: [PreferenceExample], events: ((DPOEvent) -> Void)?
    ) throws -> [Int64: Double] {
        if let json = try store.stageState(runId, "reference_logprobs") {
            let stored = try JSONDecoder().decode([String: Double].self, from: Data(json.utf8))
            var table: [Int64: Double] = [:]
            for (k, v) in stored { if let id = Int64(k) { table[id] = v } }
            if examples.allSatisfy({ $0.completionIds.allSatisfy { table[$0] != nil } }) { return table }
        }
        var done = 0
        let sums = trainer.logProbSums(reference, examples) { n in
            done += n
            events?(.reference(done: done, total: examples.count))
        }
        var table: [Int64: Double] = [:]
        for (ex, s) in zip(examples, sums) { for (id, v) in zip(ex.completionIds, s) { table[id] = v } }
        let json = try RunStore.json(Dictionary(uniqueKeysWithValues: table.map { (String($0.key), $0.value) }))
        try store.setStageState(runId, "reference_logprobs", json)
        return table
    }

    /// Saves the policy as a registered checkpoint and the optimiser moments beside it, then
    /// records both as the point to resume from (and removes the previous moments file).
    /// Returns the new policy's record and the resume state.
    static func save(
        store: RunStore, runId: Int64, step: Int, policy: TransformerModel, optimizer opt: AdamW, tokenizer: Tokenizer,
        notes: ModelAnnotations, parent: ModelRecord, previous: SavedState?
    ) throws -> (ModelRecord, SavedState) {
        let path = "checkpoints/dpo-policy-\(runId)-\(step)"
        let folder = store.folder.appendingPathComponent(path)
        try ModelFolder.save(policy, tokenizer: tokenizer, annotations: notes.inherited, to: folder)
        let optimizer = try OptimizerFile(
            saving: opt,
            to: try store.stateFolder(stage: "dpo", stageRunId: runId)
                .appendingPathComponent("optimizer-\(step).safetensors"))
        let rec = try store.registerCheckpoint(
            policy, role: .policy, path: path, weights: folder.appendingPathComponent(ModelFolder.weightsFile),
            promptTemplate: notes.promptTemplate, parentId: parent.id, stageRunId: runId, step: step,
            note: "DPO step \(step)")
        let state = SavedState(step: step, policyModelId: rec.id, optimizer: optimizer.path, optimizerSHA: optimizer.sha256)
        try store.setResumeState(state, stageRunId: runId)
        if let old = previous?.optimizer, old != optimizer.path { try? FileManager.default.removeItem(atPath: old) }
        return (rec, state)
    }
}
