import Foundation
import RunStore
import StageKit
import TransformerCore

/// What `rlhf compare` found.
public struct CompareReport: Sendable {
    public var stageRunId: Int64 = 0
    public var prompts = 0
    public var tally = Tally()
    public var meanA = 0.0, meanB = 0.0
}

/// `rlhf compare`: both policies sample the eval prompts (same seed, same settings), a judge
/// scores each completion, and the i-th sample of A meets the i-th of B on the same prompt.
/// Recorded as a stage run with its figures as metrics (compare/wins, …).
public enum CompareStage {
    /// The prompts of the settings' split and the two policies, checked: two different models,
    /// both policies, and at least one prompt.
    static func inputs(store: RunStore, options o: CompareConfig) throws -> ([PromptRecord], PretrainedModel, PretrainedModel) {
        guard o.a != o.b else { throw StoreError("--a and --b are the same model (#\(o.a)); compare two different models") }
        let split = PromptSplit(rawValue: o.split) ?? .eval
        let prompts = try store.prompts(split: split)
        guard !prompts.isEmpty else {
            throw StoreError("the run has no \(split.rawValue) prompts; add some with 'rlhf prompts add FILE --split \(split.rawValue)'")
        }
        func load(_ id: Int64) throws -> PretrainedModel {
            guard let rec = try store.model(id: id) else { throw StoreError("the run has no model #\(id); 'rlhf status' lists them") }
            let m = try store.loadModel(rec)
            guard !m.model.hasScalarHead else { throw StoreError("model #\(id) is a \(rec.role.rawValue) model, not a policy") }
            return m
        }
        return (prompts, try load(o.a), try load(o.b))
    }

    /// Both models' samples of the prompts (as `HeadToHead.sample` draws them), keeping only the
    /// prompts both fit: a prompt one model cannot fit is left out for both. Also the ids of
    /// those prompts. Fails when no prompt fits both.
    static func sampleBoth(
        _ ma: PretrainedModel, _ mb: PretrainedModel, prompts: [PromptRecord], options o: CompareConfig,
        progress: ((String, Int, Int) -> Void)?
    ) throws -> (a: [Sample], b: [Sample], common: Set<Int64>) {
        let settings = SamplingSettings(temperature: o.temperature)
        let sa = try HeadToHead.sample(ma, prompts: prompts, perPrompt: o.perPrompt, maxNewTokens: o.maxNewTokens, settings: settings, seed: o.seed) {
            progress?("sample A", $0, $1)
        }
        let sb = try HeadToHead.sample(mb, prompts: prompts, perPrompt: o.perPrompt, maxNewTokens: o.maxNewTokens, settings: settings, seed: o.seed) {
            progress?("sample B", $0, $1)
        }
        let common = Set(sa.map(\.promptId)).intersection(sb.map(\.promptId))
        guard !common.isEmpty else {
            throw StoreError("no \(o.split) prompt fits both models' context with --max-new-tokens \(o.maxNewTokens)")
        }
        return (sa.filter { common.contains($0.promptId) }, sb.filter { common.contains($0.promptId) }, common)
    }

    public static func run(
        store: RunStore, options o: CompareConfig, judge: Judge,
        progress: ((String, Int, Int) -> Void)? = nil
    ) throws -> CompareReport {
        // Both models sample, and the judge scores, in the settings' precision.
        let outerPrecision = Kernels.precision
        Kernels.precision = o.precision
        defer { Kernels.precision = outerPrecision }
        let (prompts, ma, mb) = try inputs(store: store, options: o)
        let runId = try store.beginStageRun(stage: "compare", config: o, seed: o.seed)
        return try store.failingStageRun(runId) {
            let (pa, pb, common) = try sampleBoth(ma, mb, prompts: prompts, options: o, progress: progress)
            let xa = try judge.scores(pa), xb = try judge.scores(pb)
            var r = CompareReport(stageRunId: runId, prompts: common.count, tally: HeadToHead.tally(xa, xb))
            r.meanA = xa.reduce(0, +) / Double(xa.count); r.meanB = xb.reduce(0, +) / Double(xb.count)
            let ci = r.tally.interval
            try store.logMetrics(
                stageRunId: runId, step: 0,
                [
                    ("compare/wins", Double(r.tally.wins)), ("compare/losses", Double(r.tally.losses)), ("compare/ties", Double(r.tally.ties)),
                    ("compare/preferred_a", r.tally.preferred), ("compare/ci_low", ci.low), ("compare/ci_high", ci.high),
                    ("compare/score_a", r.meanA), ("compare/score_b", r.meanB),
                ])
            try store.finishStageRun(runId, status: .succeeded)
            return r
        }
    }
}
