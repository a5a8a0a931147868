import Foundation
import RunStore
import TransformerCore

/// What every stage that trains repeats: its settings stored with its stage run, the state
/// `--resume` reads back, optimiser moments beside the checkpoints, and registering a checkpoint.
extension RunStore {
    /// Begins a run of `stage` with `config` stored as its JSON (read back by `storedConfig`).
    public func beginStageRun<C: Encodable>(stage: String, config: C, seed: UInt64) throws -> Int64 {
        try beginStageRun(stage: stage, config: try Self.json(config), seed: Int64(bitPattern: seed))
    }

    /// The settings a stage run was started with.
    public func storedConfig<C: Decodable>(_ run: StageRunRecord, as type: C.Type = C.self) throws -> C {
        try JSONDecoder().decode(C.self, from: Data(run.config.utf8))
    }

    /// The latest unfinished run of `stage` (`label` and `command` name it in the error when there
    /// is none), its settings, and the state its last save stored, if any.
    public func resumableStageRun<C: Decodable, S: Decodable>(
        _ stage: String, label: String, command: String,
        config: C.Type, state: S.Type
    ) throws -> (id: Int64, config: C, state: S?) {
        let last = try stageRunToResume(stage, label: label, command: command)
        return (last.id, try storedConfig(last), try resumeState(last.id))
    }

    /// The state the stage run's last save stored for `--resume`, if any.
    public func resumeState<S: Decodable>(_ stageRunId: Int64, as type: S.Type = S.self) throws -> S? {
        guard let json = try stageState(stageRunId, "resume") else { return nil }
        return try JSONDecoder().decode(S.self, from: Data(json.utf8))
    }

    /// Stores what `--resume` needs, replacing the previous save's.
    public func setResumeState<S: Encodable>(_ state: S, stageRunId: Int64) throws {
        try setStageState(stageRunId, "resume", try Self.json(state))
    }

    /// Reopens a stage run being resumed and drops what it logged after its last save at `step`.
    public func reopenStageRun(_ id: Int64, afterStep step: Int) throws {
        try reopenStageRun(id)
        try truncateStageRun(id, afterStep: step)
    }

    /// `checkpoints/STAGE-state-RUN/`, where a stage run keeps its optimiser moments, created.
    public func stateFolder(stage: String, stageRunId: Int64) throws -> URL {
        let dir = folder.appendingPathComponent("checkpoints/\(stage)-state-\(stageRunId)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        return dir
    }

    /// Registers the checkpoint of `model` at `path` (relative to the run), whose weights file
    /// was just written at `weights`, with the model's configuration.
    public func registerCheckpoint(
        _ model: TransformerModel, role: ModelRole, path: String, weights: URL, promptTemplate: String?,
        parentId: Int64?, stageRunId: Int64, step: Int?, note: String, baseId: Int64? = nil
    ) throws -> ModelRecord {
        try registerModel(
            role: role, path: path, sha256: try SHA256.hex(of: weights), config: try Self.json(model.config),
            promptTemplate: promptTemplate, parentId: parentId, stageRunId: stageRunId, step: step, note: note, baseId: baseId)
    }

    /// A value as the compact JSON text the run database stores.
    public static func json<T: Encodable>(_ value: T) throws -> String {
        String(decoding: try JSONEncoder().encode(value), as: UTF8.self)
    }
}

/// An optimiser's moments saved beside a checkpoint: the file and its SHA-256, checked when read
/// back.
public struct OptimizerFile: Sendable {
    /// The file's path.
    public var path: String
    /// Its SHA-256.
    public var sha256: String

    /// Saves `optimizer`'s state to `url`.
    public init(saving optimizer: AdamW, to url: URL) throws {
        try optimizer.saveState(to: url)
        path = url.path
        sha256 = try SHA256.hex(of: url)
    }

    /// The file at `path` with the SHA-256 it was saved with.
    public init(path: String, sha256: String) {
        self.path = path
        self.sha256 = sha256
    }

    /// Restores `optimizer`'s state from the file, refusing one whose SHA-256 differs.
    public func restore(into optimizer: AdamW) throws {
        try optimizer.loadState(from: URL(fileURLWithPath: path), sha256: sha256)
    }
}

extension RunStore {
    /// Runs the work of stage run `id`, and marks the run failed, with the error, when it throws:
    /// a run that died leaves its error in the database for `rlhf status`.
    public func failingStageRun<T>(_ id: Int64, _ work: () throws -> T) throws -> T {
        do {
            return try work()
        } catch {
            try? finishStageRun(id, status: .failed, error: "\(error)")
            throw error
        }
    }
}
