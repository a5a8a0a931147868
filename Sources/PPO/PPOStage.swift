import Foundation
import TransformerCore
import RunStore

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
    struct Config: Codable {
        var settings: PPOSettings
        var policyModelId: Int64
        var referenceModelId: Int64
        var rewardModelId: Int64
    }

    public static func run(store: RunStore, settings: PPOSettings, resume: Bool, events: ((PPOEvent) -> Void)? = nil,
                           shouldStop: () -> Bool = { false }) throws -> PPOReport {
        if let problem = settings.validationError() { throw StoreError(problem) }
        try store.markInterruptedRuns()
        var config: Config
        var runId: Int64
        var saved: SavedState?
        if resume {
            let last = try store.stageRunToResume("ppo", label: "PPO", command: "rlhf ppo")
            config = try JSONDecoder().decode(Config.self, from: Data(last.config.utf8))
            runId = last.id
            saved = try SavedState.load(store: store, stageRunId: runId)
            try store.reopenStageRun(runId)
            try store.truncateStageRun(runId, afterStep: saved?.iteration ?? 0)
        } else {
            guard let p = try store.latestModel(role: .policy) else { throw StoreError("the run has no policy; create it with 'rlhf init'") }
            guard let ref = try store.latestModel(role: .reference) ?? store.latestModel(role: .base) else { throw StoreError("the run has no reference model") }
            guard let rm = try store.latestModel(role: .reward) else {
                throw StoreError("the run has no reward model; train one with 'rlhf train-reward' first")
            }
            config = Config(settings: settings, policyModelId: p.id, referenceModelId: ref.id, rewardModelId: rm.id)
            runId = 0
        }
        let s = config.settings

        // Models.
        func load(_ id: Int64) throws -> (ModelRecord, PretrainedModel) {
            guard let rec = try store.model(id: id) else { throw StoreError("model #\(id) is not in the run") }
            return (rec, try ModelFolder.load(chain: store.verifiedChain(rec, sha256: SHA256.hex(of:))))
        }
        let (startPolicyRec, startPolicy) = try load(saved?.policyModelId ?? config.policyModelId)
        let (_, referenceModel) = try load(config.referenceModelId)
        let (_, rewardModel) = try load(config.rewardModelId)
        guard rewardModel.model.hasScalarHead else { throw StoreError("model #\(config.rewardModelId) is not a reward model") }
        guard startPolicy.tokenizer.tokens == rewardModel.tokenizer.tokens else {
            throw StoreError("the policy and the reward model use different tokenizers; train the reward model from this run's base")
        }
        let policy = startPolicy.model
        let value: TransformerModel
        if let vid = saved?.valueModelId {
            value = try load(vid).1.model
        } else {
            // Initialised from the reward model, with its normalisation folded into the head.
            value = TransformerModel(config: rewardModel.model.config, scalarHead: true)
            value.copyParameters(from: rewardModel.model)
            let gain = rewardModel.annotations.rewardGain ?? 1, bias = rewardModel.annotations.rewardBias ?? 0
            let w = value.tensor("score.weight")
            for i in 0..<w.count { w[i] *= gain }
            value.tensor("score.bias")[0] = value.tensor("score.bias")[0] * gain + bias
        }
        let tok = startPolicy.tokenizer, notes = startPolicy.annotations
        let stops = notes.stopTokens(tok)
        guard let eos = stops.first else { throw StoreError("the policy has no end-of-text token (tokenizer eos_token or eos_token_id in its config)") }

        // Prompts.
        var prompts: [(id: Int64, ids: [Int32])] = [], skipped = 0
        for p in try store.prompts(split: .train) {
            let ids = try notes.promptIds(p.text, tokenizer: tok)
            if ids.isEmpty || ids.count + s.responseLength > policy.config.nCtx { skipped += 1 } else { prompts.append((p.id, ids)) }
        }
        guard !prompts.isEmpty else { throw StoreError("the run has no train prompts that fit the context with --response-length \(s.responseLength)") }

        // The reward: the normalised reward model.
        let rmRunner = ScalarHeadRunner(model: rewardModel.model, rows: 16)
        let gain = rewardModel.annotations.rewardGain ?? 1, bias = rewardModel.annotations.rewardBias ?? 0
        let nCtx = rewardModel.model.config.nCtx
        let scorer: ([[Int32]], [[Int32]]) -> [Float] = { ps, rs in
            rmRunner.scores(zip(ps, rs).map { p, r in let q = p + r; return q.count > nCtx ? Array(q.suffix(nCtx)) : q }).map { gain * $0 + bias }
        }
        let trainer = PPOTrainer(policy: policy, reference: referenceModel.model, value: value, eos: eos, stopTokens: stops, pad: tok.padId ?? eos,
                                 settings: s, scorer: scorer)
        if let st = saved { try st.restore(into: trainer, store: store) }
        if runId == 0 {
            runId = try store.beginStageRun(stage: "ppo", config: String(decoding: try JSONEncoder().encode(config), as: UTF8.self),
                                            seed: Int64(bitPattern: s.seed))
        }
        var report = PPOReport(stageRunId: runId, firstIteration: trainer.iteration)
        events?(.started(stageRunId: runId, resumedAt: trainer.iteration, prompts: prompts.count, skippedPrompts: skipped))
        var currentPolicy = try store.model(id: saved?.policyModelId ?? startPolicyRec.id)!
        do {
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
                    throw StoreError("a loss or a parameter became NaN or infinite at iteration \(it); the last saved checkpoint is intact (lower --lr, or resume from it with --resume after fixing)")
                }
                try store.logMetrics(stageRunId: runId, step: it, result.metrics)
                try store.addCompletions(result.samples.map { smp in
                    let body = smp.finished ? Array(smp.response.dropLast()) : smp.response
                    return NewCompletion(promptId: picks[smp.row].id, modelId: currentPolicy.id, stageRunId: runId,
                                         text: tok.decode(body), tokenIds: smp.response, finishReason: smp.finished ? "eos" : "length",
                                         logprobSum: nil, sampling: "{\"temperature\":\(s.temperature)}", iteration: it, score: Double(smp.score))
                })
                events?(.iteration(it, result))
                report.iterationsDone += 1
                let kl = result.metric("objective/kl") ?? 0
                if kl < -1 { events?(.warning(String(format: "iteration %d: the KL estimate is negative (%.3f); the policy may be drifting into regions the reference finds likelier, check the learning rate", it, kl))) }
                let limit = s.targetKL.map { 3 * $0 } ?? 30
                if kl > limit { events?(.warning(String(format: "iteration %d: KL %.2f is large (over %.1f); the policy is moving far from the reference, consider a larger --kl-coef or --target-kl", it, kl, limit))) }
                if it % s.saveEvery == 0 || it == s.iterations {
                    currentPolicy = try save(store: store, trainer: trainer, runId: runId, tokenizer: tok, notes: notes,
                                             rewardNotes: rewardModel.annotations, parent: currentPolicy)
                    report.lastPolicy = currentPolicy
                    events?(.saved(iteration: it, policy: currentPolicy))
                }
            }
            try store.finishStageRun(runId, status: report.interrupted ? .interrupted : .succeeded,
                                     error: report.interrupted ? "stopped on request at iteration \(trainer.iteration); resume with 'rlhf ppo --resume'" : nil)
        } catch {
            try? store.finishStageRun(runId, status: .failed, error: "\(error)")
            throw error
        }
        return report
    }

    /// Saves policy and value model as checkpoint folders, the optimiser moments beside them, and
    /// the trainer's state, registering the new policy (and value model) in the run.
    static func save(store: RunStore, trainer: PPOTrainer, runId: Int64, tokenizer: Tokenizer, notes: ModelAnnotations,
                     rewardNotes: ModelAnnotations, parent: ModelRecord) throws -> ModelRecord {
        let it = trainer.iteration
        let policyPath = "checkpoints/policy-\(runId)-\(it)", valuePath = "checkpoints/value-\(runId)-\(it)"
        let stateDir = store.folder.appendingPathComponent("checkpoints/ppo-state-\(runId)")
        try FileManager.default.createDirectory(at: stateDir, withIntermediateDirectories: true)
        try ModelFolder.save(trainer.policy, tokenizer: tokenizer, annotations: notes.inherited,
                             to: store.folder.appendingPathComponent(policyPath))
        try ModelFolder.save(trainer.value, tokenizer: tokenizer, annotations: notes.inherited,
                             to: store.folder.appendingPathComponent(valuePath))
        var files: [String: String] = [:]
        for (name, opt) in [("policy", trainer.policyOptimizer), ("value", trainer.valueOptimizer)] {
            let url = stateDir.appendingPathComponent("\(name)-optimizer-\(it).safetensors")
            try opt.saveState(to: url)
            files[name] = url.path
        }
        let cfg = String(decoding: try JSONEncoder().encode(trainer.policy.config), as: UTF8.self)
        let vcfg = String(decoding: try JSONEncoder().encode(trainer.value.config), as: UTF8.self)
        let p = try store.registerModel(role: .policy, path: policyPath,
                                        sha256: try SHA256.hex(of: store.folder.appendingPathComponent(policyPath).appendingPathComponent(ModelFolder.weightsFile)),
                                        config: cfg, promptTemplate: notes.promptTemplate, parentId: parent.id, stageRunId: runId, step: it,
                                        note: "PPO iteration \(it)")
        let v = try store.registerModel(role: .value, path: valuePath,
                                        sha256: try SHA256.hex(of: store.folder.appendingPathComponent(valuePath).appendingPathComponent(ModelFolder.weightsFile)),
                                        config: vcfg, promptTemplate: notes.promptTemplate, parentId: nil, stageRunId: runId, step: it,
                                        note: "PPO value model, iteration \(it)")
        let state = SavedState(iteration: it, beta: trainer.beta.bitPattern, rng: trainer.rng, policyModelId: p.id, valueModelId: v.id,
                               policyOptimizer: files["policy"]!, valueOptimizer: files["value"]!,
                               policyOptimizerSHA: try SHA256.hex(of: URL(fileURLWithPath: files["policy"]!)),
                               valueOptimizerSHA: try SHA256.hex(of: URL(fileURLWithPath: files["value"]!)))
        try store.setStageState(runId, "resume", String(decoding: try JSONEncoder().encode(state), as: UTF8.self))
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

        static func load(store: RunStore, stageRunId: Int64) throws -> SavedState? {
            guard let json = try store.stageState(stageRunId, "resume") else { return nil }
            return try JSONDecoder().decode(SavedState.self, from: Data(json.utf8))
        }

        func restore(into t: PPOTrainer, store: RunStore) throws {
            t.iteration = iteration
            t.beta = Float(bitPattern: beta)
            t.rng = rng
            for (path, sha, opt) in [(policyOptimizer, policyOptimizerSHA, t.policyOptimizer), (valueOptimizer, valueOptimizerSHA, t.valueOptimizer)] {
                try opt.loadState(from: URL(fileURLWithPath: path), sha256: sha)
            }
        }
    }
}
