import Foundation
import RunStore
import TransformerCore

extension StatusCommand {
    /// Where the run's base model came from on the Hub: "  base model   ORG/NAME at commit C
    /// (revision R)", or nil for a local folder.
    static func originLine(_ store: RunStore) throws -> String? {
        guard let base = try store.latestModel(role: .base), let o = try store.modelOrigin(id: base.id) else { return nil }
        return "  base model   \(TerminalSafe.escape(o.repo)) at commit \(o.commit) (revision \(TerminalSafe.escape(o.revision)))"
    }

    /// The same as JSON: {"repo", "revision", "commit"}, or null.
    static func originJSON(_ store: RunStore) throws -> String {
        guard let base = try store.latestModel(role: .base), let o = try store.modelOrigin(id: base.id) else { return "null" }
        return jsonLine([("repo", JSONText.quote(o.repo)), ("revision", JSONText.quote(o.revision)), ("commit", JSONText.quote(o.commit))])
    }
}
