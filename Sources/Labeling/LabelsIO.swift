import Foundation
import TransformerCore
import RunStore

/// Moving labels in and out of a run, and summarising them.
public enum LabelsIO {
    /// Export formats.
    public enum Format: String, CaseIterable, Sendable {
        /// One `{"prompt", "chosen", "rejected"}` line per comparison (TRL, OpenRLHF).
        case trl
        /// One line per ranking with its completions, ranks and metadata.
        case rankings
    }

    /// The export as JSON lines. Only current rankings (not ones replaced by an edit).
    public static func export(store: RunStore, format: Format) throws -> (text: String, lines: Int) {
        var out = "", n = 0
        var promptText: [Int64: String] = [:]
        func prompt(_ id: Int64) throws -> String {
            if let t = promptText[id] { return t }
            let t = try store.prompt(id: id)?.text ?? ""
            promptText[id] = t
            return t
        }
        switch format {
        case .trl:
            let comps = try store.comparisons()
            let texts = try store.completions(ids: Array(Set(comps.flatMap { [$0.chosenId, $0.rejectedId] })))
            for c in comps {
                out += "{\"prompt\":\(JSONText.quote(try prompt(c.promptId))),\"chosen\":\(JSONText.quote(texts[c.chosenId]?.text ?? "")),"
                    + "\"rejected\":\(JSONText.quote(texts[c.rejectedId]?.text ?? ""))}\n"
                n += 1
            }
        case .rankings:
            let rankings = try store.rankings()
            let texts = try store.completions(ids: Array(Set(rankings.flatMap(\.ranking.shownOrder))))
            for r in rankings {
                let k = r.ranking
                let comps = k.shownOrder.enumerated().map { i, id in
                    "{\"id\":\(id),\"text\":\(JSONText.quote(texts[id]?.text ?? "")),\"rank\":\(k.ranks.map { String($0[i]) } ?? "null")}"
                }
                out += "{\"ranking_id\":\(r.id),\"prompt\":\(JSONText.quote(try prompt(k.promptId))),\"annotator\":\(JSONText.quote(k.annotator)),"
                    + "\"status\":\"\(k.status.rawValue)\",\"reason\":\(k.reason.map(JSONText.quote) ?? "null"),\"source\":\(JSONText.quote(k.source)),"
                    + "\"guideline_version\":\(k.guidelineVersion.map(JSONText.quote) ?? "null"),\"started_at\":\(k.startedAt),\"submitted_at\":\(k.submittedAt),"
                    + "\"completions\":[\(comps.joined(separator: ","))]}\n"
                n += 1
            }
        }
        return (out, n)
    }

    /// Parses a TRL preference file, all or nothing, with line numbers in errors.
    public static func parseTRL(_ data: Data, name: String) throws -> [ImportedPair] {
        var pairs: [ImportedPair] = []
        let lines = data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false)
        for (i, raw) in lines.enumerated() {
            let lineNo = i + 1
            var bytes = Array(raw)
            if bytes.last == 13 { bytes.removeLast() }
            if lineNo == 1 && bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
            if bytes.allSatisfy({ $0 == 32 || $0 == 9 }) { continue }
            guard let line = String(validating: bytes, as: UTF8.self) else { throw StoreError("\(name):\(lineNo): not valid UTF-8") }
            guard !StrictJSON.hasTrailingComma(line),
                  let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) else { throw StoreError("\(name):\(lineNo): invalid JSON") }
            guard let d = obj as? [String: Any] else { throw StoreError("\(name):\(lineNo): expected a JSON object with prompt, chosen and rejected") }
            var values: [String] = []
            for key in ["prompt", "chosen", "rejected"] {
                guard let v = d[key] else { throw StoreError("\(name):\(lineNo): no \"\(key)\" key") }
                guard let s = v as? String else {
                    throw StoreError("\(name):\(lineNo): \"\(key)\" must be a string (conversational TRL files are not supported)")
                }
                if key == "prompt" && s.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { throw StoreError("\(name):\(lineNo): \"prompt\" is empty") }
                values.append(s)
            }
            if values[1] == values[2] { throw StoreError("\(name):\(lineNo): \"chosen\" and \"rejected\" are the same text") }
            pairs.append(ImportedPair(prompt: values[0], chosen: values[1], rejected: values[2]))
        }
        if pairs.isEmpty { throw StoreError("\(name): no pairs (the file is empty)") }
        return pairs
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
            s.annotators.append(AnnotatorStats(annotator: name, count: rs.count,
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
