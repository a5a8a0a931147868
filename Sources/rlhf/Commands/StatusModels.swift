import Foundation
import RunStore
import StageKit
import TransformerCore

/// `rlhf status`'s lines about the models the next stage starts from: the policy, and the
/// reference that PPO, DPO and GRPO measure their KL to, each with where it came from.
extension StatusCommand {
    /// Where a registered model came from: "init (the base model)", "sft run #3, step 12", …
    static func origin(_ m: ModelRecord, store: RunStore) throws -> String {
        let base = try store.latestModel(role: .base)
        if let b = base, try m.role != .base && store.sameWeights(m, b) { return "the base model" + (m.id == b.id ? "" : " #\(b.id)") }
        guard let runId = m.stageRunId, let run = try store.stageRuns().first(where: { $0.id == runId }) else { return "registered by hand" }
        return "\(run.stage) run #\(run.id)" + (m.step.map { ", step \($0)" } ?? "")
    }

    /// The policy's and the reference's lines, as the text status prints them.
    static func modelLines(store: RunStore) throws -> [String] {
        var out: [String] = []
        for (label, role) in [("policy", ModelRole.policy), ("reference", .reference)] {
            guard let m = try store.latestModel(role: role) else { continue }
            let head = "  " + label.padding(toLength: 13, withPad: " ", startingAt: 0)
            let path = TerminalSafe.escape(m.path, keepNewlines: false)
            let step = m.step.map { " (step \($0))" } ?? ""
            out.append(head + "#\(m.id) \(path)\(step) — from " + (try origin(m, store: store)))
        }
        return out
    }

    /// The reference as the JSON status gives it.
    static func referenceJSON(store: RunStore) throws -> String {
        guard let r = try store.latestModel(role: .reference) else { return "null" }
        return jsonLine([("id", "\(r.id)"), ("path", JSONText.quote(r.path)), ("origin", JSONText.quote(try origin(r, store: store)))])
    }
}
