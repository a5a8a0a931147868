import Foundation
import RunStore
import TransformerCore

/// Registered models as stages read them: always through their checkpoints' verified SHA-256.
extension RunStore {
    /// The folders of `m`'s chain (adapters over their base, down to full weights), each
    /// verified against its registered SHA-256.
    public func verifiedChain(_ m: ModelRecord) throws -> [URL] { try verifiedChain(m, sha256: SHA256.hex(of:)) }

    /// `m`'s own checkpoint folder, verified against its registered SHA-256.
    public func verifiedFolder(_ m: ModelRecord) throws -> URL { try verifiedFolder(m, sha256: SHA256.hex(of:)) }

    /// Loads the registered model `m` through its verified chain.
    public func loadModel(_ m: ModelRecord) throws -> PretrainedModel { try ModelFolder.load(chain: verifiedChain(m)) }

    /// The registered model `id`, or an error naming it.
    public func requireModel(id: Int64) throws -> ModelRecord {
        guard let rec = try model(id: id) else { throw StoreError("model #\(id) is not in the run") }
        return rec
    }
}

/// What the stages that train a policy over a reference share about those models.
extension RunStore {
    /// Whether two registered models hold the same weights: the same checkpoints all the way
    /// down their chains (`rlhf init` registers one folder as base, policy and reference).
    public func sameWeights(_ a: ModelRecord, _ b: ModelRecord) throws -> Bool {
        func fingerprints(_ m: ModelRecord) throws -> [String] {
            var out = [m.sha256], cur = m
            while let id = cur.baseId, out.count <= 16, let base = try model(id: id) { out.append(base.sha256); cur = base }
            return out
        }
        return try a.id == b.id || fingerprints(a) == fingerprints(b)
    }

    /// The LoRA adapters model `id` holds, saved by a `stage` run (named in the error) that is
    /// being resumed, checked to adapt model `base`.
    public func savedAdapters(_ id: Int64, over base: Int64, config: ModelConfig, stage: String) throws -> LoRAAdapters {
        let rec = try requireModel(id: id)
        guard rec.baseId == base else {
            throw StoreError("model #\(id), saved by this \(stage) run, is not LoRA adapters over model #\(base); the run database is inconsistent")
        }
        return try PEFTAdapter.load(verifiedFolder(rec), config: config)
    }

    /// The LoRA adapters a stage trains over model `base`: those a resumed run saved as model
    /// `savedId` (checked as `savedAdapters` checks them), or, when the run starts, fresh ones
    /// of `lora` for `config`, initialised from `seed`.
    public func stageAdapters(
        saved savedId: Int64?, over base: Int64, lora: LoRAConfig, config: ModelConfig, seed: UInt64, stage: String
    ) throws -> LoRAAdapters {
        if let id = savedId { return try savedAdapters(id, over: base, config: config, stage: stage) }
        let adapters = try LoRAAdapters(config: lora.resolved(for: config.architecture), model: config)
        adapters.initialize(seed: seed)
        return adapters
    }
}
