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
