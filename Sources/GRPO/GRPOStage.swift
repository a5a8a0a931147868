import Foundation
import RunStore
import StageKit
import TransformerCore

/// What a `rlhf grpo` run did.
public struct GRPOReport: Sendable {
    public var stageRunId: Int64 = 0
    public var firstIteration = 0
    public var iterationsDone = 0
    public var interrupted = false
    public var lastPolicy: ModelRecord?
}

/// Events for the console.
public enum GRPOEvent {
    case started(stageRunId: Int64, resumedAt: Int, prompts: Int, skippedPrompts: Int)
    case iteration(Int, GRPOIteration)
    case saved(iteration: Int, policy: ModelRecord)
    /// What the reward program wrote on its standard error, as it came.
    case rewardProgramStderr(String)
}

/// `rlhf grpo` on a run: loads the policy (and the reference when β ≠ 0, the reward model when
/// the reward uses it), samples groups of completions of the train prompts, scores them with the
/// reward's sources, runs the trainer, logs every metric, keeps sample completions, and saves the
/// policy, the optimiser's moments and the random generator every `saveEvery` iterations so that
/// `--resume` continues exactly where the last save left off.
public enum GRPOStage {
    /// What the stage run stores: the settings and the models they were applied to.
    struct StoredRun: Codable {
        var settings: GRPOConfig
        var policyModelId: Int64
        /// nil when β = 0.
        var referenceModelId: Int64?
        /// nil when the reward does not use the reward model.
        var rewardModelId: Int64?
    }

    /// What `--resume` needs, stored in the stage run's state after each save.
    struct SavedState: Codable {
        var iteration: Int
        var rng: SeededRandom
        var policyModelId: Int64
        var optimizer: String
        var optimizerSHA: String
    }

    public static func run(
        store: RunStore, settings: GRPOConfig, resume: Bool, events: ((GRPOEvent) -> Void)? = nil,
        shouldStop: () -> Bool = { false }
    ) throws -> GRPOReport {
        if let problem = settings.validationError { throw StoreError(problem) }
        try store.markInterruptedRuns()
        var config: StoredRun
        var runId: Int64 = 0
        var saved: SavedState?
        if resume {
            (runId, config, saved) = try store.resumableStageRun(
                "grpo", label: "GRPO", command: "rlhf grpo", config: StoredRun.self, state: SavedState.self)
        } else {
            let p: ModelRecord
            if let id = settings.policyModel {
                guard let m = try store.model(id: id) else { throw StoreError("--policy \(id): the run has no model #\(id)") }
                p = m
            } else {
                guard let m = try store.latestModel(role: .policy) else { throw StoreError("the run has no policy; create it with 'rlhf init'") }
                p = m
            }
            var refId: Int64?, rmId: Int64?
            if settings.beta != 0 {
                guard let ref = try store.latestModel(role: .reference) ?? store.latestModel(role: .base) else {
                    throw StoreError("the run has no reference model, which --beta needs")
                }
                refId = ref.id
            }
            if settings.uses("rm") {
                guard let rm = try store.latestModel(role: .reward) else {
                    throw StoreError(
                        "the run has no reward model; train one with 'rlhf train-reward', or reward with --reward-cmd, lexicon or length")
                }
                rmId = rm.id
            }
            config = StoredRun(settings: settings, policyModelId: p.id, referenceModelId: refId, rewardModelId: rmId)
        }
        let s = config.settings
        // The products in the run's precision (the stored one when resuming) until it ends.
        let outerPrecision = Kernels.precision
        Kernels.precision = s.precision
        defer { Kernels.precision = outerPrecision }

        // Models: the policy (adapters over its starting weights with LoRA), the reference, the
        // reward model.
        let startRec = try store.requireModel(id: s.lora == nil ? saved?.policyModelId ?? config.policyModelId : config.policyModelId)
        let start = try store.loadModel(startRec)
        guard !start.model.hasScalarHead else { throw StoreError("model #\(startRec.id) has a scalar head; it is not a policy") }
        let policy = start.model
        if let lc = s.lora {
            policy.lora = try store.stageAdapters(
                saved: saved?.policyModelId, over: startRec.id, lora: lc, config: policy.config, seed: s.seed ^ 0x1042, stage: "GRPO")
        }
        var reference: TransformerModel?
        if let refId = config.referenceModelId {
            let refRec = try store.requireModel(id: refId)
            if s.lora != nil, try store.sameWeights(refRec, startRec) {
                // The same weights without the adapters: shared, not held twice.
                reference = TransformerModel(sharingWeightsOf: policy)
            } else {
                let m = try store.loadModel(refRec)
                guard m.model.config == policy.config, m.tokenizer.tokens == start.tokenizer.tokens else {
                    throw StoreError("the reference (model #\(refId)) differs from the policy in configuration or tokenizer")
                }
                reference = m.model
            }
        }
        var rewardModel: RewardModelScorer?
        if let rmId = config.rewardModelId {
            let rm = try store.loadModel(store.requireModel(id: rmId))
            guard rm.model.hasScalarHead else { throw StoreError("model #\(rmId) is not a reward model") }
            guard rm.tokenizer.tokens == start.tokenizer.tokens else {
                throw StoreError("the policy and the reward model use different tokenizers; train the reward model from this run's base")
            }
            rewardModel = RewardModelScorer(rm)
        }
        if s.frozenDType == .bf16 { for m in [policy, reference].compactMap({ $0 }) { m.holdProjectionsInBFloat16() } }
        let lexicon = s.uses("lexicon") ? try Lexicon(folder: URL(fileURLWithPath: s.lexicon)) : nil
        let tok = start.tokenizer, notes = start.annotations
        let stops = notes.stopTokens(tok)
        guard let eos = stops.first else {
            throw StoreError("the policy has no end-of-text token (tokenizer eos_token or eos_token_id in its config)")
        }

        // Prompts.
        var prompts: [(record: PromptRecord, ids: [Int32])] = [], skipped = 0
        for p in try store.prompts(split: .train) {
            let ids = try notes.promptIds(p.text, tokenizer: tok)
            if ids.isEmpty || ids.count + s.responseLength > policy.config.nCtx { skipped += 1 } else { prompts.append((p, ids)) }
        }
        guard !prompts.isEmpty else {
            throw StoreError("the run has no train prompts that fit the context with --response-length \(s.responseLength)")
        }

        // The reward: each source on the iteration's completions, the text without its EOS.
        var picks: [(record: PromptRecord, ids: [Int32])] = []
        let scorer: GRPOScorer = { rows, responses, finished in
            let texts = zip(responses, finished).map { r, done in tok.decode(done ? Array(r.dropLast()) : r) }
            let terms = try s.rewards.map { term -> (source: String, weight: Double, values: [Double]) in
                let values: [Double]
                switch term.source {
                case "rm":
                    values = rewardModel!.scores(prompts: rows.map { picks[$0].ids }, responses: responses).map(Double.init)
                case "lexicon":
                    values = texts.map { Double(lexicon!.score($0)) }
                case "length":
                    values = texts.map { SimulationRule.length(target: s.targetLength).score($0) }
                default:
                    let inputs = zip(rows, texts).map { row, text in
                        RewardProgram.inputLine(prompt: picks[row].record.text, completion: text, promptId: picks[row].record.id)
                    }
                    values = try RewardProgram.run(
                        s.rewardCommand!, inputs: inputs, timeout: s.rewardTimeout,
                        stderrSink: events.map { e in { e(.rewardProgramStderr($0)) } })
                }
                return (term.source, term.weight, values)
            }
            return RewardBreakdown(terms: terms)
        }
        let trainer = GRPOTrainer(policy: policy, reference: reference, stopTokens: stops, pad: tok.padId ?? eos, settings: s, scorer: scorer)
        if let st = saved {
            trainer.iteration = st.iteration
            trainer.rng = st.rng
            try OptimizerFile(path: st.optimizer, sha256: st.optimizerSHA).restore(into: trainer.optimizer)
        }

        ModelFolder.removeStaleTemporaries(in: store.folder.appendingPathComponent("checkpoints"))
        if runId == 0 {
            runId = try store.beginStageRun(stage: "grpo", config: config, seed: s.seed)
        } else {
            try store.reopenStageRun(runId, afterStep: saved?.iteration ?? 0)
        }
        var report = GRPOReport(stageRunId: runId, firstIteration: trainer.iteration)
        events?(.started(stageRunId: runId, resumedAt: trainer.iteration, prompts: prompts.count, skippedPrompts: skipped))
        var current = try store.requireModel(id: saved?.policyModelId ?? config.policyModelId)
        try store.failingStageRun(runId) {
            while trainer.iteration < s.iterations {
                if shouldStop() { report.interrupted = true; break }
                // A batch of prompts: without replacement when there are enough.
                if prompts.count >= s.batch {
                    var idx = Array(prompts.indices)
                    for k in 0..<s.batch { idx.swapAt(k, k + trainer.rng.int(below: idx.count - k)) }
                    picks = idx.prefix(s.batch).map { prompts[$0] }
                } else {
                    picks = (0..<s.batch).map { _ in prompts[trainer.rng.int(below: prompts.count)] }
                }
                let result = try trainer.step(prompts: picks.map(\.ids))
                let it = trainer.iteration
                guard (result.metric("policy_loss") ?? .nan).isFinite, trainer.parametersAreFinite() else {
                    throw StoreError(
                        "a loss or a parameter became NaN or infinite at iteration \(it); the last saved checkpoint is intact (lower --lr, or resume from it with --resume after fixing)"
                    )
                }
                try store.logMetrics(stageRunId: runId, step: it, result.metrics)
                try store.addCompletions(
                    result.completions.prefix(s.samplesPerIteration).map { c in
                        let body = c.finished ? Array(c.response.dropLast()) : c.response
                        return NewCompletion(
                            promptId: picks[c.row].record.id, modelId: current.id, stageRunId: runId, text: tok.decode(body),
                            tokenIds: c.response, finishReason: c.finished ? "eos" : "length", logprobSum: nil,
                            sampling: "{\"temperature\":\(s.temperature)}", iteration: it, score: c.reward)
                    })
                events?(.iteration(it, result))
                report.iterationsDone += 1
                if it % s.saveEvery == 0 || it == s.iterations {
                    current = try save(store: store, trainer: trainer, runId: runId, tokenizer: tok, notes: notes, parent: current, base: startRec)
                    report.lastPolicy = current
                    events?(.saved(iteration: it, policy: current))
                }
            }
            try store.finishStageRun(
                runId, status: report.interrupted ? .interrupted : .succeeded,
                error: report.interrupted ? "stopped on request at iteration \(trainer.iteration); resume with 'rlhf grpo --resume'" : nil)
        }
        return report
    }

    /// Saves the policy as a checkpoint folder (its adapters with LoRA, registered over `base`),
    /// the optimiser's moments beside it, and the trainer's state; registers the new policy.
    static func save(
        store: RunStore, trainer: GRPOTrainer, runId: Int64, tokenizer: Tokenizer, notes: ModelAnnotations,
        parent: ModelRecord, base: ModelRecord
    ) throws -> ModelRecord {
        let it = trainer.iteration
        let path = "checkpoints/grpo-policy-\(runId)-\(it)"
        let weights = try ModelFolder.saveTrained(
            trainer.policy, tokenizer: tokenizer, annotations: notes.inherited, baseFolder: base.path,
            to: store.folder.appendingPathComponent(path))
        let optimizer = try OptimizerFile(
            saving: trainer.optimizer,
            to: try store.stateFolder(stage: "grpo", stageRunId: runId).appendingPathComponent("optimizer-\(it).safetensors"))
        let s = trainer.settings
        let lora = trainer.policy.lora.map { ", LoRA r=\($0.config.rank)" } ?? ""
        let method = s.advantage == .rloo ? "RLOO" : "GRPO"
        let p = try store.registerCheckpoint(
            trainer.policy, role: .policy, path: path, weights: weights, promptTemplate: notes.promptTemplate, parentId: parent.id,
            stageRunId: runId, step: it, note: "\(method) (\(s.loss.rawValue)) iteration \(it)\(lora)",
            baseId: trainer.policy.lora == nil ? nil : base.id)
        try store.setResumeState(
            SavedState(iteration: it, rng: trainer.rng, policyModelId: p.id, optimizer: optimizer.path, optimizerSHA: optimizer.sha256),
            stageRunId: runId)
        return p
    }
}
