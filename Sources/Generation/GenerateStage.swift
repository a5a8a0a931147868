import Foundation
import RunStore
import StageKit
import TransformerCore

/// What a generate run did.
public struct GenerateReport: Equatable, Sendable {
    /// The stage run, or nil when there was nothing to do.
    public var stageRunId: Int64?
    /// Completions written.
    public var completions = 0
    /// Prompts that received completions.
    public var prompts = 0
    /// Prompts skipped because they already had K completions from the current policy.
    public var alreadyDone = 0
    /// Prompts skipped because prompt + N new tokens do not fit the model's context.
    public var tooLong = 0
    /// Whether it stopped early on request (Ctrl-C), after a whole batch.
    public var interrupted = false
}

/// The generate stage: K completions per prompt from the current policy, with batched KV-cache
/// sampling, stored a batch per transaction so an interruption loses at most the batch in flight.
public enum GenerateStage {
    /// Runs the stage on `store`. `progress` is told (done, total) completions after each batch;
    /// `shouldStop` is checked between batches.
    public static func run(
        store: RunStore, options o: GenerateConfig,
        progress: ((Int, Int) -> Void)? = nil, shouldStop: () -> Bool = { false }
    ) throws -> GenerateReport {
        // The products in the settings' precision until the stage ends.
        let outerPrecision = Kernels.precision
        Kernels.precision = o.precision
        defer { Kernels.precision = outerPrecision }
        guard let policyRecord = try store.latestModel(role: .policy) else {
            throw StoreError("the run has no policy model; create the run with 'rlhf init --base SOURCE'")
        }
        let prompts = try store.prompts(split: o.split)
        guard !prompts.isEmpty else {
            throw StoreError("the run has no \(o.split.map { "\($0.rawValue) " } ?? "")prompts; add some with 'rlhf prompts add FILE'")
        }
        var report = GenerateReport()
        let have = try store.completionCounts(modelId: policyRecord.id)
        var todo: [(PromptRecord, Int)] = []
        for p in prompts {
            let n = have[p.id] ?? 0
            if o.again {
                todo.append((p, o.perPrompt))
            } else if n < o.perPrompt {
                todo.append((p, o.perPrompt - n))
            } else {
                report.alreadyDone += 1
            }
        }
        if let limit = o.limit { todo = Array(todo.prefix(limit)) }
        if todo.isEmpty { return report }

        let policy = try store.loadModel(policyRecord)
        let tok = policy.tokenizer, ctx = policy.model.config.nCtx
        var encoded: [(PromptRecord, Int, [Int32])] = []
        for (p, n) in todo {
            let ids = try policy.annotations.promptIds(p.text, tokenizer: tok)
            if ids.isEmpty || ids.count + o.maxNewTokens > ctx { report.tooLong += 1; continue }
            encoded.append((p, n, ids))
        }
        if encoded.isEmpty { return report }

        let runId = try store.beginStageRun(stage: "generate", config: StoredRun(config: o, policyModelId: policyRecord.id), seed: o.seed)
        report.stageRunId = runId
        let total = encoded.reduce(0) { $0 + $1.1 }
        let generator = Generator(model: policy.model)
        let sampling =
            "{\"temperature\":\(o.sampling.temperature),\"top_k\":\(o.sampling.topK.map(String.init) ?? "null"),\"top_p\":\(o.sampling.topP),"
            + "\"greedy\":\(o.sampling.greedy),\"max_new_tokens\":\(o.maxNewTokens),\"seed\":\(o.seed)}"
        progress?(0, total)
        try store.failingStageRun(runId) {
            var i = 0
            while i < encoded.count {
                if shouldStop() { report.interrupted = true; break }
                // Whole prompts per batch, up to batchSize sequences (at least one prompt).
                var batch: [(PromptRecord, Int, [Int32])] = [encoded[i]]
                var seqs = encoded[i].1
                i += 1
                while i < encoded.count && seqs + encoded[i].1 <= o.batchSize { batch.append(encoded[i]); seqs += encoded[i].1; i += 1 }
                var rng = SeededRandom(seed: batchSeed(o.seed, batch.map { ($0.0.id, have[$0.0.id] ?? 0) }))
                let inputs = batch.flatMap { b in Array(repeating: b.2, count: b.1) }
                let outs = generator.generate(
                    prompts: inputs, maxNewTokens: o.maxNewTokens, settings: o.sampling,
                    stopTokens: policy.annotations.stopTokens(tok), pad: tok.padId ?? tok.eosId ?? 0, rng: &rng)
                var rows: [NewCompletion] = []
                var k = 0
                for b in batch {
                    for _ in 0..<b.1 {
                        let g = outs[k]; k += 1
                        let body = g.finishReason == .eos ? Array(g.tokens.dropLast()) : g.tokens
                        rows.append(
                            NewCompletion(
                                promptId: b.0.id, modelId: policyRecord.id, stageRunId: runId, text: tok.decode(body),
                                tokenIds: g.tokens, finishReason: g.finishReason.rawValue,
                                logprobSum: Double(g.logProbs.reduce(0, +)), sampling: sampling))
                    }
                }
                try store.addCompletions(rows)
                report.completions += rows.count
                report.prompts += batch.count
                progress?(report.completions, total)
            }
            try store.finishStageRun(
                runId, status: report.interrupted ? .interrupted : .succeeded,
                error: report.interrupted ? "stopped on request after \(report.completions) completions" : nil)
        }
        return report
    }

    /// A seed for one batch from the run seed and the batch's prompts and their existing counts.
    static func batchSeed(_ seed: UInt64, _ prompts: [(Int64, Int)]) -> UInt64 {
        var h: UInt64 = seed &* 0x9E37_79B9_7F4A_7C15 ^ 0xD1B5_4A32_D192_ED03
        for (id, n) in prompts {
            h = (h ^ UInt64(bitPattern: id)) &* 0x100_0000_01B3
            h = (h ^ UInt64(n)) &* 0xFF51_AFD7_ED55_8CCD
            h ^= h >> 29
        }
        return h
    }

    /// What the stage run stores: the settings, and beside them the policy that sampled.
    struct StoredRun: Encodable {
        var config: GenerateConfig
        var policyModelId: Int64

        enum CodingKeys: String, CodingKey { case policyModelId = "policy_model_id" }

        func encode(to encoder: Encoder) throws {
            try config.encode(to: encoder)
            var c = encoder.container(keyedBy: CodingKeys.self)
            try c.encode(policyModelId, forKey: .policyModelId)
        }
    }
}
