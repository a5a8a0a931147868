import Foundation

/// What a checkpoint is for.
public enum ModelRole: String, CaseIterable, Sendable {
    case base, policy, reference, reward, value
}

/// The two prompt sets of a run.
public enum PromptSplit: String, Codable, CaseIterable, Sendable {
    case train, eval
}

/// How a stage run ended (or that it has not).
public enum StageStatus: String, CaseIterable, Sendable {
    case running, succeeded, failed, interrupted
}

/// A registered checkpoint.
public struct ModelRecord: Equatable, Sendable {
    public let id: Int64
    public let role: ModelRole
    /// The checkpoint folder, relative to the run folder.
    public let path: String
    /// SHA-256 of the folder's weights when it was registered: model.safetensors, or for LoRA
    /// adapters adapter_model.safetensors.
    public let sha256: String
    /// The GPT-2 configuration, as JSON.
    public let config: String
    public let promptTemplate: String?
    public let parentId: Int64?
    public let stageRunId: Int64?
    public let step: Int?
    public let note: String?
    public let createdAt: Double
    /// For LoRA adapters: the registered model they adapt (nil for full weights).
    public var baseId: Int64? = nil

    /// The file whose SHA-256 fingerprints the checkpoint.
    public var weightsFile: String { baseId == nil ? "model.safetensors" : "adapter_model.safetensors" }
}

/// A prompt of the run.
public struct PromptRecord: Equatable, Sendable {
    public let id: Int64
    public let text: String
    public let source: String?
    public let split: PromptSplit
    /// The other keys of the imported JSON line, as a JSON object, or nil.
    public let metadata: String?
}

/// A prompt to import.
public struct NewPrompt: Equatable, Sendable {
    public var text: String
    public var metadata: String?
    public init(text: String, metadata: String? = nil) { self.text = text; self.metadata = metadata }
}

/// A completion to store.
public struct NewCompletion: Sendable {
    public var promptId: Int64
    /// The model that wrote it; nil for imported text.
    public var modelId: Int64?
    public var stageRunId: Int64
    public var text: String
    public var tokenIds: [Int32]
    /// "eos" or "length".
    public var finishReason: String
    public var logprobSum: Double?
    /// Sampling settings, as JSON.
    public var sampling: String
    public var iteration: Int?
    public var score: Double?

    public init(
        promptId: Int64, modelId: Int64?, stageRunId: Int64, text: String, tokenIds: [Int32], finishReason: String,
        logprobSum: Double?, sampling: String, iteration: Int? = nil, score: Double? = nil
    ) {
        self.promptId = promptId; self.modelId = modelId; self.stageRunId = stageRunId; self.text = text
        self.tokenIds = tokenIds; self.finishReason = finishReason; self.logprobSum = logprobSum
        self.sampling = sampling; self.iteration = iteration; self.score = score
    }
}

/// A stored completion.
public struct CompletionRecord: Equatable, Sendable {
    public let id: Int64
    public let promptId: Int64
    public let modelId: Int64?
    public let stageRunId: Int64
    public let text: String
    public let tokenIds: [Int32]
    public let finishReason: String
    public let logprobSum: Double?
    public let sampling: String
    public let iteration: Int?
    public let score: Double?
}

/// One execution of a stage.
public struct StageRunRecord: Equatable, Sendable {
    public let id: Int64
    public let stage: String
    public let config: String
    public let seed: Int64?
    public let startedAt: Double
    public let finishedAt: Double?
    public let status: StageStatus
    public let error: String?
}

/// One point of a curve.
public struct MetricPoint: Equatable, Sendable {
    public let stageRunId: Int64
    public let name: String
    public let step: Int
    /// NaN when the stored value was NaN (stored as NULL).
    public let value: Double
    public let time: Double

    public static func == (a: MetricPoint, b: MetricPoint) -> Bool {
        a.stageRunId == b.stageRunId && a.name == b.name && a.step == b.step && a.time == b.time
            && (a.value == b.value || (a.value.isNaN && b.value.isNaN))
    }
}

/// Counts for `rlhf status`.
public struct RunCounts: Equatable, Sendable {
    public var promptsBySplit: [String: Int] = [:]
    public var completions = 0
    public var rankings = 0
    public var rankingsByStatus: [String: Int] = [:]
    public var comparisons = 0
    public var modelsByRole: [String: Int] = [:]
    public var stageRunsByStatus: [String: Int] = [:]
}

/// Token ids ⇄ little-endian Int32 blob.
enum TokenBlob {
    static func encode(_ ids: [Int32]) -> [UInt8] {
        var out = [UInt8]()
        out.reserveCapacity(ids.count * 4)
        for id in ids { withUnsafeBytes(of: id.littleEndian) { out.append(contentsOf: $0) } }
        return out
    }

    static func decode(_ bytes: [UInt8]) -> [Int32] {
        stride(from: 0, to: bytes.count - bytes.count % 4, by: 4).map { i in
            Int32(littleEndian: bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: i, as: Int32.self) })
        }
    }
}

/// Where a model came from on the Hugging Face Hub, stored as JSON in `models.origin`:
/// `{"repo": "ORG/NAME", "revision": "main", "commit": "<40 hex digits>"}`.
public struct ModelOrigin: Codable, Equatable, Sendable {
    /// The repository, `ORG/NAME`.
    public var repo: String
    /// The branch, tag or commit that was asked for.
    public var revision: String
    /// The exact commit the files came from.
    public var commit: String

    /// An origin.
    public init(repo: String, revision: String, commit: String) { self.repo = repo; self.revision = revision; self.commit = commit }

    /// Reads the stored JSON; nil when it is not an object with the three strings.
    public init?(json: String) {
        guard let o = try? JSONDecoder().decode(ModelOrigin.self, from: Data(json.utf8)) else { return nil }
        self = o
    }

    /// The JSON stored (keys sorted).
    public var json: String {
        let e = JSONEncoder()
        e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try! e.encode(self), as: UTF8.self)
    }
}
