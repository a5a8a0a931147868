import Foundation
import RunStore
import StageKit
import TransformerCore

/// One item to judge: an eval prompt with a completion of each model.
public struct JudgeItem: Equatable, Sendable {
    public let promptId: Int64
    /// The first model's (`--a`) completion and the second's.
    public let completionId: Int64, otherCompletionId: Int64

    public init(promptId: Int64, completionId: Int64, otherCompletionId: Int64) {
        self.promptId = promptId; self.completionId = completionId; self.otherCompletionId = otherCompletionId
    }
}

/// The completions two models wrote for a person to judge: a compare stage run with
/// `--judge human` whose samples are stored in the run database, so that every session and every
/// annotator judges the same items, and a restart finds them again.
public struct HumanComparison: Sendable {
    /// The compare stage run that sampled the items (the judgments name it).
    public let stageRunId: Int64
    /// Its settings: the two models are `config.a` (first) and `config.b`.
    public let config: CompareConfig
    /// The i-th sample of the first model paired with the i-th of the second on the same prompt,
    /// in prompt order.
    public let items: [JudgeItem]

    /// The stored comparison of stage run `stageRunId`.
    public static func load(store: RunStore, stageRunId: Int64) throws -> HumanComparison {
        guard let run = try store.stageRuns(stage: "compare").first(where: { $0.id == stageRunId }) else {
            throw StoreError("the run has no compare stage run #\(stageRunId)")
        }
        let config = try store.storedConfig(run, as: CompareConfig.self)
        var first: [Int64: [Int64]] = [:], second: [Int64: [Int64]] = [:]
        for c in try store.completions(stageRunId: stageRunId) {
            if c.modelId == config.a { first[c.promptId, default: []].append(c.id) }
            if c.modelId == config.b { second[c.promptId, default: []].append(c.id) }
        }
        let items = first.keys.sorted().flatMap { p in
            zip(first[p]!, second[p] ?? []).map { JudgeItem(promptId: p, completionId: $0, otherCompletionId: $1) }
        }
        return HumanComparison(stageRunId: stageRunId, config: config, items: items)
    }

    /// The comparison these settings describe: the latest finished human compare run with the
    /// same settings when there is one (its completions are reused), else a new one, sampled as
    /// `rlhf compare` samples (both models, the same seed and settings) and stored with its
    /// completions. `sampled` says which.
    public static func prepare(
        store: RunStore, options o: CompareConfig, progress: ((String, Int, Int) -> Void)? = nil
    ) throws -> (comparison: HumanComparison, sampled: Bool) {
        precondition(o.judge == "human", "a human comparison")
        for run in try store.stageRuns(stage: "compare") where run.status == .succeeded {
            if let stored = try? store.storedConfig(run, as: CompareConfig.self), stored == o {
                return (try load(store: store, stageRunId: run.id), false)
            }
        }
        let outerPrecision = Kernels.precision
        Kernels.precision = o.precision
        defer { Kernels.precision = outerPrecision }
        let (prompts, ma, mb) = try CompareStage.inputs(store: store, options: o)
        let runId = try store.beginStageRun(stage: "compare", config: o, seed: o.seed)
        try store.failingStageRun(runId) {
            let (sa, sb, _) = try CompareStage.sampleBoth(ma, mb, prompts: prompts, options: o, progress: progress)
            let sampling = jsonSampling(o)
            func rows(_ samples: [Sample], _ model: Int64) -> [NewCompletion] {
                samples.map {
                    NewCompletion(
                        promptId: $0.promptId, modelId: model, stageRunId: runId, text: $0.text, tokenIds: $0.tokens,
                        finishReason: $0.finished ? "eos" : "length", logprobSum: Double($0.logProbs.reduce(0, +)), sampling: sampling)
                }
            }
            try store.addCompletions(rows(sa, o.a) + rows(sb, o.b))
            try store.finishStageRun(runId, status: .succeeded)
        }
        return (try load(store: store, stageRunId: runId), true)
    }

    /// Every human comparison of the run that holds judgments, newest first.
    public static func judged(store: RunStore) throws -> [HumanComparison] {
        try store.judgedStageRuns().map { try load(store: store, stageRunId: $0) }
    }

    static func jsonSampling(_ o: CompareConfig) -> String {
        "{\"source\":\"compare\",\"temperature\":\(o.temperature),\"max_new_tokens\":\(o.maxNewTokens),\"seed\":\(o.seed)}"
    }

    /// The side the first model's completion is shown on, for `annotator` and `item`: drawn from
    /// a generator seeded with the comparison's seed and an FNV-1a hash of the annotator's name
    /// and the item, so it is the same at every restart, independent from item to item, and
    /// differs between annotators.
    public func firstSide(annotator: String, item: JudgeItem) -> JudgeSide {
        Self.firstSide(seed: config.seed, annotator: annotator, item: item)
    }

    /// The side of `firstSide(annotator:item:)` for a comparison seeded with `seed`.
    public static func firstSide(seed: UInt64, annotator: String, item: JudgeItem) -> JudgeSide {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in annotator.utf8 { h = (h ^ UInt64(b)) &* 0x100_0000_01B3 }
        for v in [item.promptId, item.completionId, item.otherCompletionId].map({ UInt64(bitPattern: $0) }) {
            for s in stride(from: 0, to: 64, by: 8) { h = (h ^ ((v >> UInt64(s)) & 0xFF)) &* 0x100_0000_01B3 }
        }
        var rng = SeededRandom(seed: h ^ seed)
        return rng.next() >> 63 == 0 ? .a : .b
    }

    /// The items `annotator` has no current judgment of, in order.
    public func pending(store: RunStore, annotator: String) throws -> [JudgeItem] {
        let done = Set(
            try store.judgments(stageRunId: stageRunId, annotator: annotator).map { "\($0.judgment.completionId):\($0.judgment.otherCompletionId)" })
        return items.filter { !done.contains("\($0.completionId):\($0.otherCompletionId)") }
    }
}
