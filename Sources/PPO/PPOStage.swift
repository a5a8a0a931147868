import Foundation
import RunStore
import StageKit
import TransformerCore

/// What a `rlhf ppo` run did.
public struct PPOReport: Sendable {
    public var stageRunId: Int64 = 0
    public var firstIteration = 0
    public var iterationsDone = 0
    public var interrupted = false
    public var lastPolicy: ModelRecord?
}

/// Events for the console.
public enum PPOEvent {
    case started(stageRunId: Int64, resumedAt: Int, prompts: Int, skippedPrompts: Int)
    case iteration(Int, IterationResult)
    case saved(iteration: Int, policy: ModelRecord)
    case warning(String)
}

/// `rlhf ppo` on a run: loads the models, samples prompts, runs the trainer, logs every metric,
/// keeps sample completions, and saves policy, value model, optimiser moments, RNG state and β
/// every `saveEvery` iterations so that `--resume` continues exactly where the last save left off.
public enum PPOStage {
    /// What the stage run stores: the settings and the models they were applied to.
    struct StoredRun: Codable {
        var settings: PPOConfig
        var policyModelId: Int64
        var referenceModelId: Int64
        var rewardModelId: Int64
    }

    public static func run(
        store: RunStore, settings: PPOConfig, resume: Bool, events: ((PPOEvent) -> Void)? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> PPOReport {
        if let problem = settings.validationError { throw StoreError(problem) }
        try store.markInterruptedRuns()
        var config: StoredRun
        var runId: Int64
        var saved: SavedState?
        if resume {
            (runId, config, saved) = try store.resumableStageRun(
                "ppo", label: "PPO", command: "rlhf ppo", config: StoredRun.self, state: SavedState.self)
            try store.reopenStageRun(runId, afterStep: saved?.iteration ?? 0)
        } else {
            guard let p = try store.latestModel(role: .policy) else { throw StoreError("the run has no policy; create it with 'rlhf init'") }
            guard let ref = try store.latestModel(role: .reference) ?? store.latestModel(role: .base) else {
                throw StoreError("the run has no reference model")
            }
            guard let rm = try store.latestModel(role: .reward) else {
                throw StoreError("the run has no reward model; train one with 'rlhf train-reward' first")
            }
            config = StoredRun(settings: settings, policyModelId: p.id, referenceModelId: ref.id, rewardModelId: rm.id)
            runId = 0
        }
        let s = config.settings
        // The products in the run's precision (the stored one when resuming) until it ends.
        let outerPrecision = Kernels.precision
        Kernels.precision = s.precision
        defer { Kernels.precision = outerPrecision }

        // Models.
        let record = store.requireModel(id:), load = store.loadModel
        func savedAdapters(_ id: Int64, over base: Int64, config: ModelConfig) throws -> LoRAAdapters {
            try store.savedAdapters(id, over: base, config: config, stage: "PPO")
        }
        let lora = s.lora
        let startPolicyRec = try record(lora == nil ? saved?.policyModelId ?? config.policyModelId : config.policyModelId)
        let referenceRec = try record(config.referenceModelId)
        let rewardRec = try record(config.rewardModelId)
        let startPolicy = try load(startPolicyRec)
        let rewardModel = try load(rewardRec)
        guard rewardModel.model.hasScalarHead else { throw StoreError("model #\(config.rewardModelId) is not a reward model") }
        guard startPolicy.tokenizer.tokens == rewardModel.tokenizer.tokens else {
            throw StoreError("the policy and the reward model use different tokenizers; train the reward model from this run's base")
        }
        let policy = startPolicy.model
        let reference: TransformerModel, value: TransformerModel
        // The value model starts from the reward model, with its normalisation folded into the head.
        let gain0 = rewardModel.annotations.rewardGain ?? 1, bias0 = rewardModel.annotations.rewardBias ?? 0
        func foldNormalisation(_ w: UnsafeMutablePointer<Float>, _ b: UnsafeMutablePointer<Float>) {
            for i in 0..<rewardModel.model.config.nEmbd { w[i] *= gain0 }
            b[0] = b[0] * gain0 + bias0
        }
        if let lc = lora {
            // The policy: adapters over its starting weights, frozen; the reference: those
            // weights without the adapters, shared when they are the reference's.
            policy.lora = try store.stageAdapters(
                saved: saved?.policyModelId, over: startPolicyRec.id, lora: lc, config: policy.config, seed: s.seed ^ 0x1042, stage: "PPO")
            if try store.sameWeights(referenceRec, startPolicyRec) {
                reference = TransformerModel(sharingWeightsOf: policy)
            } else {
                reference = try load(referenceRec).model
                events?(
                    .warning(
                        "the reference (model #\(referenceRec.id)) is not the starting policy (model #\(startPolicyRec.id)), so it is held as a second copy rather than shared"
                    ))
            }
            // The value model: adapters and a head over the reward model's frozen trunk, shared.
            let rcfg = rewardModel.model.config
            value = TransformerModel(sharingWeightsOf: rewardModel.model)
            if let vid = saved?.valueModelId {
                value.lora = try savedAdapters(vid, over: rewardRec.id, config: rcfg)
            } else {
                let adapters = try LoRAAdapters(config: lc.resolved(for: rcfg.architecture), model: rcfg, scalarHead: true)
                adapters.initialize(seed: s.seed ^ 0x7A1E)
                let h = adapters.head!.baseAddress!
                h.update(from: rewardModel.model.tensor("score.weight").baseAddress!, count: rcfg.nEmbd)
                h[rcfg.nEmbd] = rewardModel.model.tensor("score.bias")[0]
                foldNormalisation(h, h + rcfg.nEmbd)
                value.lora = adapters
            }
            guard value.lora!.head != nil else { throw StoreError("the saved value adapters have no head") }
            if s.frozenDType == .bf16 {
                // Once the value head has its copy of the reward head (which stays f32 anyway).
                for m in [policy, reference, rewardModel.model] { m.holdProjectionsInBFloat16() }
            }
        } else {
            reference = try load(referenceRec).model
            if let vid = saved?.valueModelId {
                value = try load(record(vid)).model
            } else {
                value = TransformerModel(config: rewardModel.model.config, scalarHead: true)
                value.copyParameters(from: rewardModel.model)
                foldNormalisation(value.tensor("score.weight").baseAddress!, value.tensor("score.bias").baseAddress!)
            }
        }
        let tok = startPolicy.tokenizer, notes = startPolicy.annotations
        let stops = notes.stopTokens(tok)
        guard let eos = stops.first else {
            throw StoreError("the policy has no end-of-text token (tokenizer eos_token or eos_token_id in its config)")
        }

        // Prompts.
        var prompts: [(id: Int64, ids: [Int32])] = [], skipped = 0
        for p in try store.prompts(split: .train) {
            let ids = try notes.promptIds(p.text, tokenizer: tok)
            if ids.isEmpty || ids.count + s.responseLength > policy.config.nCtx { skipped += 1 } else { prompts.append((p.id, ids)) }
        }
        guard !prompts.isEmpty else {
            throw StoreError("the run has no train prompts that fit the context with --response-length \(s.responseLength)")
        }

        // The reward: the normalised reward model.
        let rm = RewardModelScorer(rewardModel)
        let scorer: ([[Int32]], [[Int32]]) -> [Float] = { rm.scores(prompts: $0, responses: $1) }
        let trainer = PPOTrainer(
            policy: policy, reference: reference, value: value, eos: eos, stopTokens: stops, pad: tok.padId ?? eos,
            settings: s, scorer: scorer)
        if let st = saved { try st.restore(into: trainer, store: store) }
        if runId == 0 {
            runId = try store.beginStageRun(stage: "ppo", config: config, seed: s.seed)
        }
        var report = PPOReport(stageRunId: runId, firstIteration: trainer.iteration)
        events?(.started(stageRunId: runId, resumedAt: trainer.iteration, prompts: prompts.count, skippedPrompts: skipped))
        var currentPolicy = try record(saved?.policyModelId ?? config.policyModelId)
        try store.failingStageRun(runId) {
            while trainer.iteration < s.iterations {
                if shouldStop() { report.interrupted = true; break }
                // A batch of prompts: without replacement when there are enough.
                var picks: [(id: Int64, ids: [Int32])] = []
                if prompts.count >= s.batch {
                    var idx = Array(prompts.indices)
                    for k in 0..<s.batch { idx.swapAt(k, k + trainer.rng.int(below: idx.count - k)) }
                    picks = idx.prefix(s.batch).map { prompts[$0] }
                } else {
                    picks = (0..<s.batch).map { _ in prompts[trainer.rng.int(below: prompts.count)] }
                }
                let result = trainer.step(prompts: picks.map(\.ids))
                let it = trainer.iteration
                let total = result.metric("loss/total") ?? .nan
                guard total.isFinite, trainer.parametersAreFinite() else {
                    throw StoreError(
                        "a loss or a parameter became NaN or infinite at iteration \(it); the last saved checkpoint is intact (lower --lr, or resume from it with --resume after fixing)"
                    )
                }
                try store.logMetrics(stageRunId: runId, step: it, result.metrics)
                try store.addCompletions(
                    result.samples.map { smp in
                        let body = smp.finished ? Array(smp.response.dropLast()) : smp.response
                        return NewCompletion(
                            promptId: picks[smp.row].id, modelId: currentPolicy.id, stageRunId: runId,
                            text: tok.decode(body), tokenIds: smp.response, finishReason: smp.finished ? "eos" : "length",
                            logprobSum: nil, sampling: "{\"temperature\":\(s.temperature)}", iteration: it, score: Double(smp.score))
                    })
                events?(.iteration(it, result))
                report.iterationsDone += 1
                let kl = result.metric("objective/kl") ?? 0
                if kl < -1 {
                    events?(
                        .warning(
                            String(
                                format:
                                    "iteration %d: the KL estimate is negative (%.3f); the policy may be drifting into regions the reference finds likelier, check the learning rate",
                                it, kl)))
                }
                let limit = s.targetKL.map { 3 * $0 } ?? 30
                if kl > limit {
                    events?(
                        .warning(
                            String(
                                format:
                                    "iteration %d: KL %.2f is large (over %.1f); the policy is moving far from the reference, consider a larger --kl-coef or --target-kl",
                                it, kl, limit)))
                }
                if it % s.saveEvery == 0 || it == s.iterations {
                    currentPolicy = try save(
                        store: store, trainer: trainer, runId: runId, tokenizer: tok, notes: notes,
                        parent: currentPolicy, policyBase: startPolicyRec, reward: rewardRec)
                    report.lastPolicy = currentPolicy
                    events?(.saved(iteration: it, policy: currentPolicy))
                }
            }
            try store.finishStageRun(
                runId, status: report.interrupted ? .interrupted : .succeeded,
                error: report.interrupted ? "stopped on request at iteration \(trainer.iteration); resume with 'rlhf ppo --resume'" : nil)
        }
        return report
    }

    /// Saves policy and value model as checkpoint folders, the optimiser moments beside them, and
    /// the trainer's state, registering the new policy (and value model) in the run.
    /// With LoRA, the checkpoints hold the adapters, registered over `policyBase` (the policy's)
    /// and `reward` (the value model's).
    static func save(
        store: RunStore, trainer: PPOTrainer, runId: Int64, tokenizer: Tokenizer, notes: ModelAnnotations,
        parent: ModelRecord, policyBase: ModelRecord, reward: ModelRecord
    ) throws -> ModelRecord {
        let it = trainer.iteration
        let policyPath = "checkpoints/policy-\(runId)-\(it)", valuePath = "checkpoints/value-\(runId)-\(it)"
        let stateDir = try store.stateFolder(stage: "ppo", stageRunId: runId)
        func write(_ model: TransformerModel, _ path: String, over base: ModelRecord) throws -> (weights: URL, baseId: Int64?) {
            let file = try ModelFolder.saveTrained(
                model, tokenizer: tokenizer, annotations: notes.inherited, baseFolder: base.path,
                to: store.folder.appendingPathComponent(path))
            return (file, model.lora == nil ? nil : base.id)
        }
        let (policyWeights, policyBaseId) = try write(trainer.policy, policyPath, over: policyBase)
        let (valueWeights, valueBaseId) = try write(trainer.value, valuePath, over: reward)
        let policyOptimizer = try OptimizerFile(
            saving: trainer.policyOptimizer, to: stateDir.appendingPathComponent("policy-optimizer-\(it).safetensors"))
        let valueOptimizer = try OptimizerFile(
            saving: trainer.valueOptimizer, to: stateDir.appendingPathComponent("value-optimizer-\(it).safetensors"))
        let lora = trainer.policy.lora.map { ", LoRA r=\($0.config.rank)" } ?? ""
        let p = try store.registerCheckpoint(
            trainer.policy, role: .policy, path: policyPath, weights: policyWeights, promptTemplate: notes.promptTemplate,
            parentId: parent.id, stageRunId: runId, step: it, note: "PPO iteration \(it)\(lora)", baseId: policyBaseId)
        let v = try store.registerCheckpoint(
            trainer.value, role: .value, path: valuePath, weights: valueWeights, promptTemplate: notes.promptTemplate,
            parentId: nil, stageRunId: runId, step: it, note: "PPO value model, iteration \(it)\(lora)", baseId: valueBaseId)
        let state = SavedState(
            iteration: it, beta: trainer.beta.bitPattern, rng: trainer.rng, policyModelId: p.id, valueModelId: v.id,
            policyOptimizer: policyOptimizer.path, valueOptimizer: valueOptimizer.path,
            policyOptimizerSHA: policyOptimizer.sha256, valueOptimizerSHA: valueOptimizer.sha256)
        try store.setResumeState(state, stageRunId: runId)
        return p
    }

    /// What `--resume` needs, stored in the stage run's state after each save.
    struct SavedState: Codable {
        var iteration: Int
        var beta: UInt32
        var rng: SeededRandom
        var policyModelId: Int64
        var valueModelId: Int64
        var policyOptimizer: String
        var valueOptimizer: String
        var policyOptimizerSHA: String
        var valueOptimizerSHA: String

        func restore(into t: PPOTrainer, store: RunStore) throws {
            t.iteration = iteration
            t.beta = Float(bitPattern: beta)
            t.rng = rng
            try OptimizerFile(path: policyOptimizer, sha256: policyOptimizerSHA).restore(into: t.policyOptimizer)
            try OptimizerFile(path: valueOptimizer, sha256: valueOptimizerSHA).restore(into: t.valueOptimizer)
        }
    }
}
