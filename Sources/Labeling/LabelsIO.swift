import Foundation
import RunStore
import TransformerCore

/// Moving labels in and out of a run, and summarising them.
public enum LabelsIO {
    /// Export formats.
    public enum Format: String, CaseIterable, Sendable {
        /// One `{"prompt", "chosen", "rejected"}` line per comparison, the prompt laid out as the
        /// model read it (TRL's standard preference form; OpenRLHF without a chat template).
        case trl
        /// The same pairs in TRL's conversational form: `[{"role": "user", …}]` prompts and
        /// `[{"role": "assistant", …}]` completions, for a tool that applies the chat template.
        case trlConversational = "trl-conversational"
        /// One line per ranking with its completions, ranks and metadata.
        case rankings
        /// One `{"prompt", "completion"}` line per demonstration, the prompt laid out as the model
        /// reads it and the completion ending with the stop token's text (TRL's prompt-completion
        /// form for `SFTTrainer`).
        case sft
        /// One `{"messages": [...]}` line per demonstration (TRL's conversational form): the
        /// conversation, the answer as the last assistant turn.
        case sftConversational = "sft-conversational"

        /// Whether the lines are demonstrations (else preference pairs or rankings).
        public var isDemonstrations: Bool { self == .sft || self == .sftConversational }
    }

    /// How the run lays out prompts: its name, and the tokenizer and annotations of its policy.
    public struct PromptContext {
        public var run: String
        public var tokenizer: Tokenizer
        public var annotations: ModelAnnotations
        public init(run: String, tokenizer: Tokenizer, annotations: ModelAnnotations) {
            self.run = run; self.tokenizer = tokenizer; self.annotations = annotations
        }
    }

    /// Where a pair came from: the `origin` of the `rlhf` object of each exported line. A pair
    /// imported from such a file keeps it, so exporting it again gives the same line.
    public struct PairOrigin: Codable, Equatable, Sendable {
        /// One side of the pair.
        public struct Side: Codable, Equatable, Sendable {
            public var completionId: Int64
            /// The model that wrote it (absent for imported text).
            public var modelId: Int64?
            /// The stage run (generate, ppo or an import) that stored it.
            public var stageRunId: Int64
            /// `eos` (it ended at a stop token) or `length`.
            public var finish: String
            enum CodingKeys: String, CodingKey { case completionId = "completion_id", modelId = "model_id", stageRunId = "stage_run_id", finish }
        }
        public var run: String
        /// The prompt as the user wrote it, before any template.
        public var prompt: String
        public var promptId: Int64
        public var rankingId: Int64
        public var annotator: String
        public var chosen: Side
        public var rejected: Side
        enum CodingKeys: String, CodingKey { case run, prompt, promptId = "prompt_id", rankingId = "ranking_id", annotator, chosen, rejected }

        /// The JSON this project writes for it (sorted keys, so a round trip is byte for byte).
        public var json: String {
            let e = JSONEncoder()
            e.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
            return String(decoding: try! e.encode(self), as: UTF8.self)
        }
    }

    /// An export: the JSON lines, their count, and (TRL formats) how many pairs would not
    /// tokenize as one text exactly as rlhf scored them (a token merging across the boundary
    /// between prompt and completion).
    public struct Export {
        public var text: String
        public var lines: Int
        public var retokenized = 0
        /// Pairs with a completion cut at the length limit: it has no stop token, and TRL's
        /// trainers append the tokenizer's EOS to it.
        public var cutAtLength = 0
    }

    /// The export as JSON lines. Only current rankings (not ones replaced by an edit). The TRL
    /// formats lay prompts out through `context` (raw prompts without one).
    public static func export(store: RunStore, format: Format, context: PromptContext? = nil) throws -> Export {
        if format.isDemonstrations { return try exportDemonstrations(store: store, format: format, context: context) }
        var out = "", n = 0, retokenized = 0, cutAtLength = 0
        var prompts: [Int64: PromptRecord] = [:]
        func prompt(_ id: Int64) throws -> PromptRecord {
            if let p = prompts[id] { return p }
            guard let p = try store.prompt(id: id) else { throw StoreError("prompt #\(id) is missing from the run database") }
            prompts[id] = p
            return p
        }
        let run = context?.run ?? store.folder.lastPathComponent
        switch format {
        case .trl, .trlConversational:
            let comps = try store.comparisons()
            let texts = try store.completions(ids: Array(Set(comps.flatMap { [$0.chosenId, $0.rejectedId] })))
            var annotators: [Int64: String] = [:]
            for r in try store.rankings() { annotators[r.id] = r.ranking.annotator }
            // A completion that stopped ends with its stop token's text (the one it generated;
            // the first of the model's stop tokens for imported text).
            let stops = context.map { c in c.annotations.stopTokens(c.tokenizer).map { c.tokenizer.decode([$0]) } } ?? []
            let stopIds = context.map { $0.annotations.stopTokens($0.tokenizer) } ?? []
            func stopText(_ r: CompletionRecord) -> String {
                guard r.finishReason == "eos", let ctx = context else { return "" }
                if let last = r.tokenIds.last, stopIds.contains(last) { return ctx.tokenizer.decode([last]) }
                return stops.first ?? ""
            }
            var laidOut: [Int64: String] = [:]
            for c in comps {
                guard let chosen = texts[c.chosenId], let rejected = texts[c.rejectedId] else {
                    throw StoreError("comparison of ranking #\(c.rankingId) names a completion missing from the run database")
                }
                let origin =
                    try storedOrigin(chosen)
                    ?? PairOrigin(
                        run: run, prompt: try prompt(c.promptId).text, promptId: c.promptId, rankingId: c.rankingId,
                        annotator: annotators[c.rankingId] ?? "", chosen: side(chosen), rejected: side(rejected))
                if chosen.finishReason == "length" || rejected.finishReason == "length" { cutAtLength += 1 }
                var fields: [(String, String)]
                if format == .trl {
                    if laidOut[c.promptId] == nil {
                        laidOut[c.promptId] =
                            try context.map { try $0.annotations.standaloneText(origin.prompt, tokenizer: $0.tokenizer) } ?? origin.prompt
                    }
                    let p = laidOut[c.promptId]!
                    func body(_ r: CompletionRecord) -> String { r.text + stopText(r) }
                    fields = [("prompt", JSONText.quote(p)), ("chosen", JSONText.quote(body(chosen))), ("rejected", JSONText.quote(body(rejected)))]
                    if let ctx = context {
                        for r in [chosen, rejected] where try !tokenizesAsScored(p + body(r), prompt: origin.prompt, completion: r, ctx) {
                            retokenized += 1
                            break
                        }
                    }
                } else {
                    func turn(_ role: String, _ text: String) -> String { "[{\"role\":\"\(role)\",\"content\":\(JSONText.quote(text))}]" }
                    fields = [
                        ("prompt", turn("user", origin.prompt)), ("chosen", turn("assistant", chosen.text)),
                        ("rejected", turn("assistant", rejected.text)),
                    ]
                }
                var meta = "{\"format\":\"\(format.rawValue)\""
                if format == .trl && !stops.isEmpty { meta += ",\"stop\":[" + stops.map(JSONText.quote).joined(separator: ",") + "]" }
                meta += ",\"origin\":\(origin.json)}"
                out += "{" + (fields + [("rlhf", meta)]).map { "\"\($0.0)\":\($0.1)" }.joined(separator: ",") + "}\n"
                n += 1
            }
        case .sft, .sftConversational: break
        case .rankings:
            let rankings = try store.rankings()
            let texts = try store.completions(ids: Array(Set(rankings.flatMap(\.ranking.shownOrder))))
            for r in rankings {
                let k = r.ranking
                let comps = k.shownOrder.enumerated().map { i, id in
                    "{\"id\":\(id),\"text\":\(JSONText.quote(texts[id]?.text ?? "")),\"rank\":\(k.ranks.map { String($0[i]) } ?? "null")}"
                }
                out +=
                    "{\"run\":\(JSONText.quote(run)),\"ranking_id\":\(r.id),\"model_id\":\(k.modelId.map(String.init) ?? "null"),\"prompt\":\(JSONText.quote(try prompt(k.promptId).text)),\"annotator\":\(JSONText.quote(k.annotator)),"
                    + "\"status\":\"\(k.status.rawValue)\",\"reason\":\(k.reason.map(JSONText.quote) ?? "null"),\"source\":\(JSONText.quote(k.source)),"
                    + "\"guideline_version\":\(k.guidelineVersion.map(JSONText.quote) ?? "null"),\"started_at\":\(k.startedAt),\"submitted_at\":\(k.submittedAt),"
                    + "\"completions\":[\(comps.joined(separator: ","))]}\n"
                n += 1
            }
        }
        return Export(text: out, lines: n, retokenized: retokenized, cutAtLength: cutAtLength)
    }

    /// Prompts as JSON lines for online trainers elsewhere: `prompt`, the text TRL tokenizes with
    /// `tokenizer(text)`; `input`, the text OpenRLHF reads without adding special tokens (the
    /// tokenizer's leading tokens written out); `chat`, the raw prompt as one user turn, for a
    /// trainer that applies the chat template (not named `messages`, which TRL would take for
    /// the dataset's form); `rlhf`, the run, raw prompt, id and split.
    public static func exportPrompts(_ prompts: [PromptRecord], run: String, context: PromptContext?) throws -> String {
        let lead = context.map { $0.tokenizer.decode($0.tokenizer.prefixIds) } ?? ""
        var text = ""
        for p in prompts {
            let prompt = try context.map { try $0.annotations.standaloneText(p.text, tokenizer: $0.tokenizer) } ?? p.text
            let meta = "{\"run\":\(JSONText.quote(run)),\"prompt\":\(JSONText.quote(p.text)),\"prompt_id\":\(p.id),\"split\":\"\(p.split.rawValue)\"}"
            let messages = "[{\"role\":\"user\",\"content\":\(JSONText.quote(p.text))}]"
            text += "{\"prompt\":\(JSONText.quote(prompt)),\"input\":\(JSONText.quote(lead + prompt)),\"chat\":\(messages),\"rlhf\":\(meta)}\n"
        }
        return text
    }

    static func side(_ r: CompletionRecord) -> PairOrigin.Side {
        PairOrigin.Side(completionId: r.id, modelId: r.modelId, stageRunId: r.stageRunId, finish: r.finishReason)
    }

    /// The origin an imported completion brought with it.
    static func storedOrigin(_ r: CompletionRecord) throws -> PairOrigin? {
        guard r.modelId == nil, r.sampling.contains("\"origin\""),
            let obj = try? JSONSerialization.jsonObject(with: Data(r.sampling.utf8)) as? [String: Any], let o = obj["origin"],
            let data = try? JSONSerialization.data(withJSONObject: o)
        else { return nil }
        return try? JSONDecoder().decode(PairOrigin.self, from: data)
    }

    /// Whether `text` (prompt and completion as one string), tokenized as transformers'
    /// `tokenizer(text)` does, gives the ids rlhf scores for the completion.
    static func tokenizesAsScored(_ text: String, prompt: String, completion r: CompletionRecord, _ ctx: PromptContext) throws -> Bool {
        let t = ctx.tokenizer, a = ctx.annotations
        let scored =
            try a.promptIds(prompt, tokenizer: t) + a.scoredCompletionIds(r.tokenIds, text: r.text, stopped: r.finishReason == "eos", tokenizer: t)
        return t.encodeWithSpecialTokens(text) == scored
    }

    /// Parses a preference file in TRL's standard or conversational form, all or nothing, with
    /// line numbers in errors. A line this project exported (with an `rlhf` object) gives back
    /// the raw prompt, the completions without their stop token's text (one of `rlhf.stop`),
    /// how each ended, the annotator and the pair's origin.
    public static func parseTRL(_ data: Data, name: String) throws -> [ImportedPair] {
        var pairs: [ImportedPair] = []
        for (at, d) in try objectLines(data, name: name, expected: "prompt, chosen and rejected") {
            var values: [String] = []
            var conversational: Bool?
            for key in ["prompt", "chosen", "rejected"] {
                guard let v = d[key] else { throw StoreError("\(at): no \"\(key)\" key") }
                let text: String
                if let s = v as? String {
                    text = s
                } else if v is [Any] {
                    text = try singleTurn(v, role: key == "prompt" ? "user" : "assistant", key: key, at: at)
                } else {
                    throw StoreError("\(at): \"\(key)\" must be a string, or a list of messages (TRL's conversational form)")
                }
                let isList = v is [Any]
                if let c = conversational, c != isList { throw StoreError("\(at): \"\(key)\" mixes the standard and conversational forms") }
                conversational = isList
                if key == "prompt" && text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw StoreError("\(at): \"prompt\" is empty") }
                values.append(text)
            }
            var pair = ImportedPair(prompt: values[0], chosen: values[1], rejected: values[2])
            if let meta = d["rlhf"] {
                guard let m = meta as? [String: Any], let o = m["origin"], let od = try? JSONSerialization.data(withJSONObject: o),
                    let origin = try? JSONDecoder().decode(PairOrigin.self, from: od)
                else {
                    throw StoreError(
                        "\(at): \"rlhf\" is not the object rlhf export writes (format, stop, origin with run, prompt, ids and finish reasons)")
                }
                for f in [origin.chosen.finish, origin.rejected.finish] where f != "eos" && f != "length" {
                    throw StoreError("\(at): a finish reason is eos or length, not \(f)")
                }
                let stops = conversational == true ? [] : (m["stop"] as? [String] ?? []).filter { !$0.isEmpty }
                func strip(_ s: String, _ finish: String) -> String {
                    guard finish == "eos", let stop = stops.filter({ s.hasSuffix($0) }).max(by: { $0.count < $1.count }) else { return s }
                    return String(s.dropLast(stop.count))
                }
                pair = ImportedPair(
                    prompt: origin.prompt, chosen: strip(values[1], origin.chosen.finish), rejected: strip(values[2], origin.rejected.finish))
                pair.chosenFinish = origin.chosen.finish
                pair.rejectedFinish = origin.rejected.finish
                pair.annotator = origin.annotator.isEmpty ? nil : origin.annotator
                pair.origin = origin.json
            }
            if pair.chosen == pair.rejected { throw StoreError("\(at): \"chosen\" and \"rejected\" are the same text") }
            pairs.append(pair)
        }
        if pairs.isEmpty { throw StoreError("\(name): no pairs (the file is empty)") }
        return pairs
    }

    /// The JSON objects of a JSON-lines file, each with "NAME:LINE" for errors: blank lines are
    /// skipped, a byte-order mark and CR line ends are allowed; anything else that is not one JSON
    /// object per line (with the keys `expected` names) throws with its line number.
    static func objectLines(_ data: Data, name: String, expected: String) throws -> [(at: String, object: [String: Any])] {
        var out: [(String, [String: Any])] = []
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (i, raw) in lines.enumerated() {
            let lineNo = i + 1
            var bytes = Array(raw)
            if bytes.last == 13 { bytes.removeLast() }
            if lineNo == 1 && bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
            let at = "\(name):\(lineNo)"
            guard let line = String(validating: bytes, as: UTF8.self) else { throw StoreError("\(at): not valid UTF-8") }
            guard !StrictJSON.hasTrailingComma(line),
                let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8))
            else { throw StoreError("\(at): invalid JSON") }
            guard let d = obj as? [String: Any] else { throw StoreError("\(at): expected a JSON object with \(expected)") }
            out.append((at, d))
        }
        return out
    }

    /// The text of a conversational field: one message of `role` with string content.
    static func singleTurn(_ v: Any, role: String, key: String, at: String) throws -> String {
        guard let list = v as? [Any], list.count == 1, let m = list[0] as? [String: Any] else {
            throw StoreError("\(at): \"\(key)\" must hold exactly one message (one \(role) turn); longer conversations are not supported")
        }
        guard let r = m["role"] as? String, r == role else {
            throw StoreError("\(at): the message in \"\(key)\" must have role \"\(role)\"")
        }
        guard let c = m["content"] as? String else { throw StoreError("\(at): the message in \"\(key)\" must have string content") }
        return c
    }

    /// Per-annotator figures.
    public struct AnnotatorStats: Equatable, Sendable {
        public var annotator: String
        public var count: Int
        public var skipRate: Double
        public var flagRate: Double
        /// Median seconds from showing an item to submitting it.
        public var medianSeconds: Double
    }

    /// The summary of `rlhf labels stats`.
    public struct Stats: Equatable, Sendable {
        public var annotators: [AnnotatorStats] = []
        /// Items ranked by two or more annotators.
        public var sharedItems = 0
        /// Of the completion pairs two annotators both ordered strictly, the fraction they ordered the same way.
        public var pairwiseAgreement: Double?
        /// Mean Kendall's τ-b over (item, pair of annotators).
        public var kendallTau: Double?
        /// Rankings in which the completion shown first was ranked best.
        public var firstShownBest = 0
        /// Rankings counted for position bias.
        public var rankedCount = 0
        /// The expected fraction if position did not matter: the mean of (tied best)/K.
        public var chanceFirstBest = 0.0
        public var firstShownBestRate: Double { rankedCount > 0 ? Double(firstShownBest) / Double(rankedCount) : 0 }
    }

    /// Computes the statistics of current rankings.
    public static func stats(_ rankings: [NewRanking]) -> Stats {
        var s = Stats()
        let byAnnotator = Dictionary(grouping: rankings, by: \.annotator)
        for (name, rs) in byAnnotator.sorted(by: { $0.key < $1.key }) {
            let secs = rs.map { $0.submittedAt - $0.startedAt }.sorted()
            let median = secs.isEmpty ? 0 : (secs.count % 2 == 1 ? secs[secs.count / 2] : (secs[secs.count / 2 - 1] + secs[secs.count / 2]) / 2)
            s.annotators.append(
                AnnotatorStats(
                    annotator: name, count: rs.count,
                    skipRate: Double(rs.filter { $0.status == .skipped }.count) / Double(rs.count),
                    flagRate: Double(rs.filter { $0.status == .flagged }.count) / Double(rs.count),
                    medianSeconds: median))
        }
        let ranked = rankings.filter { $0.status == .ranked && $0.ranks != nil }
        // Position bias.
        var chance = 0.0
        for r in ranked {
            let ranks = r.ranks!
            s.rankedCount += 1
            if ranks[0] == 1 { s.firstShownBest += 1 }
            chance += Double(ranks.filter { $0 == 1 }.count) / Double(ranks.count)
        }
        s.chanceFirstBest = s.rankedCount > 0 ? chance / Double(s.rankedCount) : 0
        // Agreement on shared items.
        let byItem = Dictionary(grouping: ranked) { "\($0.promptId):\($0.modelId ?? -1)" }
        var concordant = 0, discordant = 0, tauSum = 0.0, tauCount = 0
        for (_, rs) in byItem {
            let latest = Dictionary(grouping: rs, by: \.annotator).values.map { $0.max { $0.submittedAt < $1.submittedAt }! }
            guard latest.count >= 2 else { continue }
            s.sharedItems += 1
            let maps = latest.map { r in Dictionary(uniqueKeysWithValues: zip(r.shownOrder, r.ranks!)) }
            for a in 0..<maps.count {
                for b in (a + 1)..<maps.count {
                    let ids = Array(Set(maps[a].keys).intersection(maps[b].keys)).sorted()
                    var c = 0, d = 0, tiesA = 0, tiesB = 0, n0 = 0
                    for i in 0..<ids.count {
                        for j in (i + 1)..<max(i + 1, ids.count) {
                            n0 += 1
                            let x = maps[a][ids[i]]! - maps[a][ids[j]]!, y = maps[b][ids[i]]! - maps[b][ids[j]]!
                            if x == 0 { tiesA += 1 }
                            if y == 0 { tiesB += 1 }
                            if x != 0 && y != 0 { if (x > 0) == (y > 0) { c += 1 } else { d += 1 } }
                        }
                    }
                    concordant += c; discordant += d
                    let denom = (Double(n0 - tiesA) * Double(n0 - tiesB)).squareRoot()
                    if denom > 0 { tauSum += Double(c - d) / denom; tauCount += 1 }
                }
            }
        }
        if concordant + discordant > 0 { s.pairwiseAgreement = Double(concordant) / Double(concordant + discordant) }
        if tauCount > 0 { s.kendallTau = tauSum / Double(tauCount) }
        return s
    }
}
