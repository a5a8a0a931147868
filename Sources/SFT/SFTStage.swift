import Foundation
import RunStore
import StageKit
import TransformerCore

/// Progress of an SFT run, for the console.
public enum SFTEvent {
    /// Best-of-N sampling: prompts done of total.
    case sampling(done: Int, total: Int)
    /// Rejection sampling stored `made` demonstrations (in one transaction); `passedOver` gave none.
    case made(made: Int, passedOver: Int, source: String)
    case started(stageRunId: Int64, resumedAt: Int, totalSteps: Int, train: Int, validation: Int, tooLong: Int, heldOut: String)
    case step(Int, TokenStatistics, numTokens: Int, lr: Float)
    case epoch(Int, TokenStatistics)
    case saved(step: Int, policy: ModelRecord)
    /// The SFT policy was registered as the run's reference.
    case reference(ModelRecord)
}

/// What a `rlhf sft` run did.
public struct SFTReport: Sendable {
    public var stageRunId: Int64 = 0
    public var firstStep = 0, stepsDone = 0, totalSteps = 0
    public var trainExamples = 0, validationExamples = 0
    /// Demonstrations rejection sampling made and stored before training.
    public var made = 0
    /// Validation figures after each epoch (of this process).
    public var epochs: [(epoch: Int, stats: TokenStatistics)] = []
    public var interrupted = false
    public var lastPolicy: ModelRecord?
    /// The SFT policy registered as the reference (nil with --keep-reference, or when interrupted).
    public var reference: ModelRecord?
    /// Seconds of training (evaluation and checkpoints included), of its optimiser steps alone
    /// (forward, backward, clipping, AdamW), and the positions (padding included) and real tokens
    /// the steps computed.
    public var trainSeconds = 0.0, stepSeconds = 0.0, computedTokens = 0, realTokens = 0
    /// Positions computed per second of the steps: the figure `rlhf pretrain` shows.
    public var tokensPerSecond: Double { stepSeconds > 0 ? Double(computedTokens) / stepSeconds : 0 }
}

/// `rlhf sft` on a run: supervised fine-tuning of the policy on the run's demonstrations (with
/// `--from`, after making some by rejection sampling), the loss on the completions' tokens only.
/// Checkpoints (with the optimiser moments) every `saveEvery` steps, at each epoch's end and on a
/// stop request; `resume` continues the latest unfinished SFT run from its last checkpoint with the
/// same data, order and metrics. When it finishes, the SFT policy is also registered as the run's
/// reference (unless `keepReference`), so the stages after it (ppo, dpo, grpo) start from it and
/// measure their KL to it, as InstructGPT does.
public enum SFTStage {
    /// What the stage run stores: the settings, the model they were applied to, and the
    /// demonstrations it trains on (fixed when it starts, so a resume sees the same data).
    struct StoredRun: Codable {
        var settings: SFTConfig
        var policyModelId: Int64
        var demonstrationIds: [Int64]
    }

    /// What `--resume` needs, stored after each checkpoint.
    struct SavedState: Codable {
        var step: Int
        var policyModelId: Int64
        var optimizer: String
        var optimizerSHA: String
        /// TRL's `num_tokens` so far.
        var numTokens: Int
    }

    public static func run(
        store: RunStore, settings: SFTConfig, resume: Bool, events: ((SFTEvent) -> Void)? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> SFTReport {
        if let problem = settings.validationError { throw StoreError(problem) }
        try store.markInterruptedRuns()
        var config: StoredRun
        var runId: Int64 = 0
        var saved: SavedState?
        var made = 0
        if resume {
            (runId, config, saved) = try store.resumableStageRun(
                "sft", label: "SFT", command: "rlhf sft", config: StoredRun.self, state: SavedState.self)
        } else {
            let p: ModelRecord
            if let id = settings.policyModel {
                guard let m = try store.model(id: id) else { throw StoreError("--policy \(id): the run has no model #\(id)") }
                p = m
            } else {
                guard let m = try store.latestModel(role: .policy) else { throw StoreError("the run has no policy; create it with 'rlhf init'") }
                p = m
            }
            made = try makeDemonstrations(store: store, settings: settings, policy: p, events: events)
            let ids = try store.demonstrations().map(\.id)
            guard !ids.isEmpty else { throw noDemonstrations }
            config = StoredRun(settings: settings, policyModelId: p.id, demonstrationIds: ids)
        }
        let s = config.settings
        // The products in the run's precision (the stored one when resuming) until it ends.
        let outerPrecision = Kernels.precision
        Kernels.precision = s.precision
        defer { Kernels.precision = outerPrecision }

        // The model: adapters over its starting weights with LoRA.
        let startRec = try store.requireModel(id: s.lora == nil ? saved?.policyModelId ?? config.policyModelId : config.policyModelId)
        let start = try store.loadModel(startRec)
        guard !start.model.hasScalarHead else { throw StoreError("model #\(startRec.id) has a scalar head; it is not a language model") }
        let model = start.model
        if let lc = s.lora {
            model.lora = try store.stageAdapters(
                saved: saved?.policyModelId, over: startRec.id, lora: lc, config: model.config, seed: s.seed ^ 0x5F7, stage: "SFT")
        }
        if s.frozenDType == .bf16 { model.holdProjectionsInBFloat16() }
        let tok = start.tokenizer, notes = start.annotations

        // Data: the stored demonstrations; validation on those of eval prompts, else on a
        // held-out share of the prompts.
        let (all, tooLong) = try SFTData.examples(
            try store.demonstrations(ids: config.demonstrationIds), store: store, tokenizer: tok, annotations: notes,
            maxLength: min(s.maxLength, model.config.nCtx))
        guard !all.isEmpty else {
            throw StoreError("none of the \(config.demonstrationIds.count) demonstrations has a completion token within --max-length \(s.maxLength)")
        }
        let evalPrompts = Set(try store.prompts(split: .eval).map(\.id))
        var valPrompts = Set(all.map(\.promptId)).intersection(evalPrompts)
        var heldOut = "the eval prompts' demonstrations"
        if valPrompts.isEmpty {
            let ids = Set(all.map(\.promptId))
            valPrompts = ids.count >= 2 ? PreferenceSplit.validationPrompts(ids, fraction: s.validationFraction, seed: s.seed) : []
            heldOut = valPrompts.isEmpty ? "none (one prompt)" : "\(valPrompts.count) of \(ids.count) prompts"
        }
        let train = all.filter { !valPrompts.contains($0.promptId) }, val = all.filter { valPrompts.contains($0.promptId) }
        guard !train.isEmpty else {
            throw StoreError("every demonstration is of an eval prompt; write or make some for train prompts (validation uses the eval ones)")
        }
        let stepsPerEpoch = (train.count + s.batch - 1) / s.batch, totalSteps = stepsPerEpoch * s.epochs

        ModelFolder.removeStaleTemporaries(in: store.folder.appendingPathComponent("checkpoints"))
        if runId == 0 {
            runId = try store.beginStageRun(stage: "sft", config: config, seed: s.seed)
        } else {
            try store.reopenStageRun(runId, afterStep: saved?.step ?? 0)
        }
        var report = SFTReport(stageRunId: runId, firstStep: saved?.step ?? 0, totalSteps: totalSteps)
        report.trainExamples = train.count; report.validationExamples = val.count; report.made = made
        events?(
            .started(
                stageRunId: runId, resumedAt: saved?.step ?? 0, totalSteps: totalSteps, train: train.count, validation: val.count,
                tooLong: tooLong, heldOut: heldOut))
        try store.failingStageRun(runId) {
            let trainer = SFTTrainer(model: model, rows: s.rowsPerPass, pad: tok.padId ?? notes.stopTokens(tok).first ?? 0)
            let opt = AdamW(training: model, config: AdamWConfig(learningRate: s.learningRate, weightDecay: s.weightDecay))
            if let st = saved { try OptimizerFile(path: st.optimizer, sha256: st.optimizerSHA).restore(into: opt) }
            let schedule = LearningRateSchedule(kind: .linear, peak: s.learningRate, totalSteps: totalSteps)
            var current = try store.requireModel(id: saved?.policyModelId ?? config.policyModelId)
            var step = saved?.step ?? 0, savedStep = step, numTokens = saved?.numTokens ?? 0
            func checkpoint() throws {
                current = try save(
                    store: store, model: model, optimizer: opt, runId: runId, step: step, numTokens: numTokens, tokenizer: tok,
                    notes: notes, parent: current, base: startRec, previous: saved)
                saved = try store.resumeState(runId)
                savedStep = step
                report.lastPolicy = current
                events?(.saved(step: step, policy: current))
            }
            let t0 = Date()
            run: while step < totalSteps {
                let epoch = step / stepsPerEpoch
                // Each epoch's order comes from the seed and the epoch alone, so a resumed run
                // sees the same batches.
                var order = train
                var rng = SeededRandom(seed: s.seed &+ 0x5F7 &+ UInt64(epoch))
                rng.shuffle(&order)
                for k in (step - epoch * stepsPerEpoch)..<stepsPerEpoch {
                    if shouldStop() {
                        report.interrupted = true
                        break run
                    }
                    let batch = Array(order[(k * s.batch)..<min((k + 1) * s.batch, order.count)])
                    let stepStart = Date()
                    model.lora?.training = true
                    model.lora?.dropoutSeed = s.seed &* 0x9E37_79B9 &+ UInt64(step)
                    let (stats, computed) = trainer.accumulateGradients(batch)
                    model.lora?.training = false
                    guard stats.loss.isFinite else {
                        throw StoreError("the loss became \(stats.loss) at step \(step + 1); the last checkpoint is intact (lower --lr)")
                    }
                    let norm = clipGradientNorm(model.trainableGradients, maxNorm: s.maxGradNorm)
                    let lr = schedule.rate(at: step)
                    opt.update(params: model.trainableParameters, grads: model.trainableGradients, lr: lr)
                    report.stepSeconds += Date().timeIntervalSince(stepStart)
                    step += 1
                    report.stepsDone += 1
                    report.computedTokens += computed
                    let real = batch.reduce(0) { $0 + $1.ids.count }
                    report.realTokens += real
                    numTokens += real
                    try store.logMetrics(
                        stageRunId: runId, step: step,
                        [
                            ("loss", stats.loss), ("mean_token_accuracy", stats.meanTokenAccuracy), ("entropy", stats.entropy),
                            ("num_tokens", Double(numTokens)), ("grad_norm", Double(norm)), ("learning_rate", Double(lr)),
                            ("epoch", Double(step) / Double(stepsPerEpoch)),
                        ])
                    events?(.step(step, stats, numTokens: numTokens, lr: lr))
                    let epochEnd = step % stepsPerEpoch == 0
                    if epochEnd && !val.isEmpty {
                        let v = trainer.evaluate(val)
                        try store.logMetrics(
                            stageRunId: runId, step: step,
                            [("eval_loss", v.loss), ("eval_mean_token_accuracy", v.meanTokenAccuracy), ("eval_entropy", v.entropy)])
                        report.epochs.append((step / stepsPerEpoch, v))
                        events?(.epoch(step / stepsPerEpoch, v))
                    }
                    if epochEnd || step % s.saveEvery == 0 { try checkpoint() }
                }
            }
            report.trainSeconds = Date().timeIntervalSince(t0)
            // What a stop request left unsaved is saved, so a resume loses nothing.
            if step > savedStep { try checkpoint() }
            if !report.interrupted && !s.keepReference {
                let p = current
                let ref = try store.registerModel(
                    role: .reference, path: p.path, sha256: p.sha256, config: p.config, promptTemplate: p.promptTemplate, parentId: p.id,
                    stageRunId: runId, step: p.step, note: "the SFT policy #\(p.id), the reference of the stages after SFT", baseId: p.baseId)
                report.reference = ref
                events?(.reference(ref))
            }
            try store.finishStageRun(
                runId, status: report.interrupted ? .interrupted : .succeeded,
                error: report.interrupted ? "stopped on request at step \(step); resume with 'rlhf sft --resume'" : nil)
        }
        return report
    }

    /// The error for a run with nothing to train on.
    static let noDemonstrations = StoreError(
        "the run has no demonstrations; write some with 'rlhf label --write', import them with 'rlhf labels import --format sft', or make them with 'rlhf sft --from rankings' or '--from best-of N'"
    )

    /// Rejection sampling as `settings.from` asks, its demonstrations stored in one transaction;
    /// returns how many.
    static func makeDemonstrations(store: RunStore, settings s: SFTConfig, policy: ModelRecord, events: ((SFTEvent) -> Void)?) throws -> Int {
        let made: (demonstrations: [NewDemonstration], passedOver: Int)
        switch s.from {
        case .demonstrations: return 0
        case .rankings:
            made = try RejectionSampling.fromRankings(store: store)
            if made.demonstrations.isEmpty && made.passedOver == 0, try store.demonstrations().isEmpty {
                throw StoreError("the run has no rankings; rank completions with 'rlhf label' (or 'rlhf label --simulate lexicon') first")
            }
        case .bestOf(let n):
            let outer = Kernels.precision
            Kernels.precision = s.precision
            defer { Kernels.precision = outer }
            let m = try store.loadModel(policy)
            guard !m.model.hasScalarHead else { throw StoreError("model #\(policy.id) has a scalar head; it cannot sample") }
            let score: RejectionSampling.Scorer
            switch s.scorer {
            case .rm:
                guard let rmRec = try store.latestModel(role: .reward) else {
                    throw StoreError("the run has no reward model for --scorer rm; train one with 'rlhf train-reward', or use --scorer lexicon")
                }
                let rm = try store.loadModel(rmRec)
                guard rm.model.hasScalarHead, rm.tokenizer.tokens == m.tokenizer.tokens else {
                    throw StoreError("the reward model #\(rmRec.id) does not score this policy's tokens")
                }
                let scorer = RewardModelScorer(rm)
                score = { p, r, _ in scorer.scores(prompts: Array(repeating: p, count: r.count), responses: r).map(Double.init) }
            case .lexicon:
                let rule = SimulationRule.lexicon(try Lexicon(folder: URL(fileURLWithPath: s.lexicon)))
                score = { _, _, texts in texts.map(rule.score) }
            case .length:
                let rule = SimulationRule.length(target: s.targetLength)
                score = { _, _, texts in texts.map(rule.score) }
            }
            let prompts = try store.prompts(split: .train)
            guard !prompts.isEmpty else { throw StoreError("the run has no train prompts to sample; add some with 'rlhf prompts add FILE'") }
            made = try RejectionSampling.bestOf(
                n, prompts: prompts, policy: m, maxNewTokens: s.responseLength, settings: s.sampling, seed: s.seed,
                annotator: "best-of-\(s.scorer.rawValue)", score: score, progress: { events?(.sampling(done: $0, total: $1)) })
        }
        try store.submitDemonstrations(made.demonstrations)
        events?(.made(made: made.demonstrations.count, passedOver: made.passedOver, source: s.from.name))
        return made.demonstrations.count
    }

    /// Saves the model as a checkpoint folder (its adapters with LoRA, registered over `base`),
    /// the optimiser's moments beside it, and the resume state; registers the new policy and
    /// removes the previous moments file.
    static func save(
        store: RunStore, model: TransformerModel, optimizer: AdamW, runId: Int64, step: Int, numTokens: Int, tokenizer: Tokenizer,
        notes: ModelAnnotations, parent: ModelRecord, base: ModelRecord, previous: SavedState?
    ) throws -> ModelRecord {
        let path = "checkpoints/sft-policy-\(runId)-\(step)"
        let weights = try ModelFolder.saveTrained(
            model, tokenizer: tokenizer, annotations: notes.inherited, baseFolder: base.path, to: store.folder.appendingPathComponent(path))
        let opt = try OptimizerFile(
            saving: optimizer, to: try store.stateFolder(stage: "sft", stageRunId: runId).appendingPathComponent("optimizer-\(step).safetensors"))
        let lora = model.lora.map { ", LoRA r=\($0.config.rank)" } ?? ""
        let p = try store.registerCheckpoint(
            model, role: .policy, path: path, weights: weights, promptTemplate: notes.promptTemplate, parentId: parent.id, stageRunId: runId,
            step: step, note: "SFT step \(step)\(lora)", baseId: model.lora == nil ? nil : base.id)
        try store.setResumeState(
            SavedState(step: step, policyModelId: p.id, optimizer: opt.path, optimizerSHA: opt.sha256, numTokens: numTokens), stageRunId: runId)
        if let old = previous?.optimizer, old != opt.path { try? FileManager.default.removeItem(atPath: old) }
        return p
    }
}
