import Foundation
import RunStore
import TransformerCore

/// Demonstrations in and out of a run, in TRL's SFT dataset forms.
extension LabelsIO {
    /// Where a demonstration came from: the `origin` of the `rlhf` object of each exported line.
    /// A demonstration imported from such a file keeps it, so exporting it again gives the same line.
    public struct DemonstrationOrigin: Codable, Equatable, Sendable {
        public var run: String
        /// The prompt as the user wrote it, before any template (a conversation's last user turn).
        public var prompt: String
        public var promptId: Int64
        public var demonstrationId: Int64
        public var annotator: String
        /// `human`, `import`, `rankings` or `best-of:N`.
        public var source: String
        /// The completion the writer started from.
        public var fromCompletionId: Int64?
        public var guidelineVersion: String?
        public var startedAt: Double
        public var submittedAt: Double
        enum CodingKeys: String, CodingKey {
            case run, prompt, promptId = "prompt_id", demonstrationId = "demonstration_id", annotator, source
            case fromCompletionId = "from_completion_id", guidelineVersion = "guideline_version", startedAt = "started_at"
            case submittedAt = "submitted_at"
        }

        /// The JSON this project writes for it (sorted keys, so a round trip is byte for byte).
        public var json: String {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try! e.encode(self), as: UTF8.self)
        }
    }

    /// One chat message as JSON: `role` and `content` first, any other keys after, sorted.
    static func messageJSON(_ m: [String: Any]) throws -> String {
        var parts = ["\"role\":" + JSONText.quote(m["role"] as? String ?? ""), "\"content\":" + (try valueJSON(m["content"] ?? NSNull()))]
        for k in m.keys.sorted() where k != "role" && k != "content" { parts.append(JSONText.quote(k) + ":" + (try valueJSON(m[k]!))) }
        return "{" + parts.joined(separator: ",") + "}"
    }

    static func valueJSON(_ v: Any) throws -> String {
        if let s = v as? String { return JSONText.quote(s) }
        let data = try JSONSerialization.data(withJSONObject: v, options: [.sortedKeys, .withoutEscapingSlashes, .fragmentsAllowed])
        return String(decoding: data, as: UTF8.self)
    }

    /// The current demonstrations (an edited one's earlier version is left out), every source.
    static func exportDemonstrations(store: RunStore, format: Format, context: PromptContext?) throws -> Export {
        var out = "", n = 0, retokenized = 0
        let run = context?.run ?? store.folder.lastPathComponent
        let stop = context.flatMap { $0.annotations.stopText($0.tokenizer) } ?? ""
        var laidOut: [Int64: String] = [:]
        for r in try store.demonstrations() {
            let d = r.demonstration
            guard let prompt = try store.prompt(id: d.promptId) else {
                throw StoreError("demonstration #\(r.id) names prompt #\(d.promptId), which is missing from the run database")
            }
            let origin =
                d.origin.flatMap { try? JSONDecoder().decode(DemonstrationOrigin.self, from: Data($0.utf8)) }
                ?? DemonstrationOrigin(
                    run: run, prompt: prompt.text, promptId: d.promptId, demonstrationId: r.id, annotator: d.annotator, source: d.source,
                    fromCompletionId: d.fromCompletionId, guidelineVersion: d.guidelineVersion, startedAt: d.startedAt,
                    submittedAt: d.submittedAt)
            let messages = try d.messages.map { try conversation(Data($0.utf8), at: "demonstration #\(r.id)").messages }
            var fields: [(String, String)]
            var meta = "{\"format\":\"\(format.rawValue)\""
            if format == .sft {
                let turns = messages.map { Array($0.dropLast()) }
                let p: String
                if let turns, !(turns.count == 1 && turns[0]["role"] as? String == "user") {
                    // A conversation of several turns: its prompt is the chat template's rendering
                    // of them, as for one turn.
                    guard let ctx = context else {
                        throw StoreError(
                            "demonstration #\(r.id) is a conversation of several turns, which needs the run's policy to lay out; add one, or export --format sft-conversational"
                        )
                    }
                    p = try renderTurns(turns, ctx, demonstration: r.id)
                } else {
                    if laidOut[d.promptId] == nil {
                        laidOut[d.promptId] =
                            try context.map { try $0.annotations.standaloneText(origin.prompt, tokenizer: $0.tokenizer) } ?? origin.prompt
                    }
                    p = laidOut[d.promptId]!
                    if let ctx = context {
                        let t = ctx.tokenizer, a = ctx.annotations
                        let scored =
                            try a.promptIds(origin.prompt, tokenizer: t) + a.scoredCompletionIds([], text: d.text, stopped: true, tokenizer: t)
                        if t.encodeWithSpecialTokens(p + d.text + stop) != scored { retokenized += 1 }
                    }
                }
                fields = [("prompt", JSONText.quote(p)), ("completion", JSONText.quote(d.text + stop))]
                if !stop.isEmpty { meta += ",\"stop\":[" + JSONText.quote(stop) + "]" }
            } else {
                let list =
                    try messages?.map(messageJSON)
                    ?? [
                        "{\"role\":\"user\",\"content\":\(JSONText.quote(origin.prompt))}",
                        "{\"role\":\"assistant\",\"content\":\(JSONText.quote(d.text))}",
                    ]
                fields = [("messages", "[" + list.joined(separator: ",") + "]")]
            }
            meta += ",\"origin\":\(origin.json)}"
            out += "{" + (fields + [("rlhf", meta)]).map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
            n += 1
        }
        return Export(text: out, lines: n, retokenized: retokenized)
    }

    /// The prompt turns of a conversation through the run's chat template (its own, or the one
    /// `rlhf export` writes for its prompt layout), generation prompt added, less the tokenizer's
    /// leading tokens, as `standaloneText` lays out one turn.
    static func renderTurns(_ turns: [[String: Any]], _ ctx: PromptContext, demonstration id: Int64) throws -> String {
        let t = ctx.tokenizer
        let chat = turns.map { ChatMessage(role: $0["role"] as? String ?? "", content: $0["content"] as? String ?? "") }
        let text: String
        do {
            text = try ChatTemplate(ctx.annotations.exportedChatTemplate(t)).render(
                messages: chat, addGenerationPrompt: true, specialTokens: t.namedSpecialTokens)
        } catch {
            throw StoreError(
                "demonstration #\(id): the run's prompt layout cannot lay out its conversation (\(error)); export --format sft-conversational")
        }
        let prefix = t.decode(t.prefixIds)
        return !prefix.isEmpty && text.hasPrefix(prefix) ? String(text.dropFirst(prefix.count)) : text
    }

    /// A checked conversation: its messages, the last one the assistant's answer, and the prompt
    /// as a run stores it (the last user turn's text).
    static func conversation(_ data: Data, at: String) throws -> (messages: [[String: Any]], prompt: String, answer: String) {
        guard let list = try? JSONSerialization.jsonObject(with: data) as? [Any] else { throw StoreError("\(at): \"messages\" must be a list") }
        return try conversation(list, at: at)
    }

    static func conversation(_ list: [Any], at: String) throws -> (messages: [[String: Any]], prompt: String, answer: String) {
        var messages: [[String: Any]] = []
        for (i, m) in list.enumerated() {
            guard let d = m as? [String: Any], let role = d["role"] as? String else {
                throw StoreError("\(at): message \(i + 1) must be an object with a \"role\"")
            }
            guard d["content"] is String else { throw StoreError("\(at): message \(i + 1) (\(role)) must have string content") }
            messages.append(d)
        }
        guard let last = messages.last, last["role"] as? String == "assistant" else {
            throw StoreError("\(at): the last message must be the assistant's answer")
        }
        guard let user = messages.dropLast().last(where: { $0["role"] as? String == "user" }) else {
            throw StoreError("\(at): no user message before the answer")
        }
        return (messages, user["content"] as! String, last["content"] as! String)
    }

    /// Parses demonstrations, all or nothing, with line numbers in errors. Three forms, as TRL's
    /// SFT datasets have them: prompt-completion (`{"prompt": "…", "completion": "…"}`), the same
    /// with lists of messages, and conversational (`{"messages": [...]}`, the last assistant turn
    /// the answer). A line this project exported (with an `rlhf` object) gives back the raw
    /// prompt, the answer without the stop token's text (one of `rlhf.stop`), the annotator,
    /// the guideline version and the demonstration's origin.
    public static func parseDemonstrations(_ data: Data, name: String) throws -> [ImportedDemonstration] {
        var out: [ImportedDemonstration] = []
        for (at, d) in try objectLines(data, name: name, expected: "prompt and completion, or messages") {
            var item: ImportedDemonstration
            var conversational = true
            if let m = d["messages"] {
                guard let list = m as? [Any] else { throw StoreError("\(at): \"messages\" must be a list of messages") }
                let c = try conversation(list, at: at)
                item = ImportedDemonstration(
                    prompt: c.prompt, text: c.answer, messages: "[" + (try c.messages.map(messageJSON)).joined(separator: ",") + "]")
            } else {
                guard let p = d["prompt"] else { throw StoreError("\(at): no \"prompt\" key (nor \"messages\")") }
                guard let c = d["completion"] else { throw StoreError("\(at): no \"completion\" key") }
                switch (p, c) {
                case (let ps as String, let cs as String):
                    item = ImportedDemonstration(prompt: ps, text: cs)
                    conversational = false
                case (let pl as [Any], let cl as [Any]):
                    guard cl.count == 1 else { throw StoreError("\(at): \"completion\" must hold exactly one message (the assistant's answer)") }
                    let conv = try conversation(pl + cl, at: at)
                    item = ImportedDemonstration(
                        prompt: conv.prompt, text: conv.answer, messages: "[" + (try conv.messages.map(messageJSON)).joined(separator: ",") + "]")
                case (is String, is [Any]), (is [Any], is String):
                    throw StoreError("\(at): \"prompt\" and \"completion\" mix the standard and conversational forms")
                default:
                    throw StoreError("\(at): \"prompt\" and \"completion\" must be strings, or lists of messages (TRL's conversational form)")
                }
            }
            if let meta = d["rlhf"] {
                guard let m = meta as? [String: Any], let o = m["origin"], let od = try? JSONSerialization.data(withJSONObject: o),
                    let origin = try? JSONDecoder().decode(DemonstrationOrigin.self, from: od)
                else {
                    throw StoreError(
                        "\(at): \"rlhf\" is not the object rlhf export writes for a demonstration (format, stop, origin with run, prompt, ids, annotator, source and times)"
                    )
                }
                if !conversational {
                    item.prompt = origin.prompt
                    let stops = (m["stop"] as? [String] ?? []).filter { !$0.isEmpty }
                    if let s = stops.filter({ item.text.hasSuffix($0) }).max(by: { $0.count < $1.count }) {
                        item.text = String(item.text.dropLast(s.count))
                    }
                }
                item.annotator = origin.annotator.isEmpty ? nil : origin.annotator
                item.guidelineVersion = origin.guidelineVersion
                item.origin = origin.json
            }
            if item.prompt.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw StoreError("\(at): the prompt is empty") }
            if item.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw StoreError("\(at): the answer is empty") }
            out.append(item)
        }
        if out.isEmpty { throw StoreError("\(name): no demonstrations (the file is empty)") }
        return out
    }

    /// Whether a file to import holds demonstrations (its first line has `completion` or
    /// `messages`) rather than preference pairs.
    public static func holdsDemonstrations(_ data: Data) -> Bool {
        for raw in data.split(separator: UInt8(ascii: "\n")) {
            var bytes = Array(raw)
            if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 || $0 == 13 }) { continue }
            guard let obj = try? JSONSerialization.jsonObject(with: Data(bytes)) as? [String: Any] else { return false }
            return obj["completion"] != nil || obj["messages"] != nil
        }
        return false
    }
}
