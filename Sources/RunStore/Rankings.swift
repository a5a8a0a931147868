import Foundation

/// What an annotator did with an item.
public enum RankingStatus: String, CaseIterable, Sendable {
    case ranked, skipped, flagged
}

/// A ranking to store: one submit, skip or flag.
public struct NewRanking: Equatable, Sendable {
    public var promptId: Int64
    /// Whose completions were shown (nil for imported ones).
    public var modelId: Int64?
    public var annotator: String
    /// Completion ids in the order they were shown.
    public var shownOrder: [Int64]
    /// Rank of each shown completion (1 = best; equal ranks are ties); nil unless ranked.
    public var ranks: [Int]?
    public var status: RankingStatus
    /// Why it was skipped or flagged.
    public var reason: String?
    public var guidelineVersion: String?
    /// `human`, `simulated:RULE` or `import`.
    public var source: String
    public var startedAt: Double
    public var submittedAt: Double

    public init(
        promptId: Int64, modelId: Int64?, annotator: String, shownOrder: [Int64], ranks: [Int]?, status: RankingStatus,
        reason: String? = nil, guidelineVersion: String? = nil, source: String = "human", startedAt: Double, submittedAt: Double
    ) {
        self.promptId = promptId; self.modelId = modelId; self.annotator = annotator; self.shownOrder = shownOrder
        self.ranks = ranks; self.status = status; self.reason = reason; self.guidelineVersion = guidelineVersion
        self.source = source; self.startedAt = startedAt; self.submittedAt = submittedAt
    }
}

/// A stored ranking.
public struct RankingRecord: Equatable, Sendable {
    public let id: Int64
    public let ranking: NewRanking
    /// The ranking that replaced this one when it was edited.
    public let replacedBy: Int64?
}

/// A chosen/rejected pair implied by a ranking.
public struct ComparisonRecord: Equatable, Sendable {
    public let rankingId: Int64
    public let promptId: Int64
    public let chosenId: Int64
    public let rejectedId: Int64
    /// Rejected rank minus chosen rank (≥ 1).
    public let rankGap: Int
}

/// The pairs one ranking implies, over the completions it compared.
public struct ComparisonGroup: Equatable, Sendable {
    public let rankingId: Int64
    public let promptId: Int64
    /// The completions that appear in a pair, in order of first appearance.
    public let completionIds: [Int64]
    /// (chosen, rejected) as indices into `completionIds`.
    public let pairs: [Pair]

    /// One chosen/rejected pair, as indices.
    public struct Pair: Equatable, Sendable {
        public let chosen: Int, rejected: Int
        public init(chosen: Int, rejected: Int) { self.chosen = chosen; self.rejected = rejected }
    }

    public init(rankingId: Int64, promptId: Int64, completionIds: [Int64], pairs: [Pair]) {
        self.rankingId = rankingId; self.promptId = promptId; self.completionIds = completionIds; self.pairs = pairs
    }
}

/// An item to label: a prompt with the completions one model wrote for it (2 to 9).
public struct LabelItem: Equatable, Sendable {
    public let promptId: Int64
    public let modelId: Int64?
    /// Completion ids in id order.
    public let completionIds: [Int64]

    public init(promptId: Int64, modelId: Int64?, completionIds: [Int64]) {
        self.promptId = promptId; self.modelId = modelId; self.completionIds = completionIds
    }
}

extension RunStore {
    /// Every pair with strictly different ranks, the better-ranked one chosen. Ties give no pair.
    public static func comparisons(shownOrder: [Int64], ranks: [Int]) -> [(chosen: Int64, rejected: Int64, gap: Int)] {
        precondition(shownOrder.count == ranks.count, "one rank per shown completion")
        var out: [(Int64, Int64, Int)] = []
        for i in 0..<ranks.count {
            for j in 0..<ranks.count where ranks[i] < ranks[j] { out.append((shownOrder[i], shownOrder[j], ranks[j] - ranks[i])) }
        }
        return out.sorted { ($0.0, $0.1) < ($1.0, $1.1) }
    }

    /// Stores a ranking and its comparisons in one transaction. With `replacing`, the earlier
    /// ranking is kept but marked replaced, and its comparisons are dropped.
    @discardableResult
    public func submitRanking(_ r: NewRanking, replacing: Int64? = nil) throws -> Int64 {
        if r.status == .ranked {
            guard let ranks = r.ranks, ranks.count == r.shownOrder.count, ranks.allSatisfy({ $0 >= 1 }) else {
                throw StoreError("a ranking needs one rank (1 or more) per shown completion")
            }
        }
        guard Set(r.shownOrder).count == r.shownOrder.count else { throw StoreError("a ranking shows each completion once") }
        return try db.transaction {
            try db.run(
                """
                INSERT INTO rankings (prompt_id, model_id, annotator, shown_order, ranks, status, reason, guideline_version, source, started_at, submitted_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .int(r.promptId), r.modelId.map { .int($0) } ?? .null, .text(r.annotator), .text(Self.jsonArray(r.shownOrder)),
                    r.ranks.map { .text(Self.jsonArray($0)) } ?? .null, .text(r.status.rawValue), r.reason.map { .text($0) } ?? .null,
                    r.guidelineVersion.map { .text($0) } ?? .null, .text(r.source), .double(r.startedAt), .double(r.submittedAt),
                ])
            let id = db.lastInsertId
            if r.status == .ranked, let ranks = r.ranks {
                for c in Self.comparisons(shownOrder: r.shownOrder, ranks: ranks) {
                    try db.run(
                        "INSERT INTO comparisons (ranking_id, chosen_id, rejected_id, rank_gap) VALUES (?, ?, ?, ?)",
                        [.int(id), .int(c.chosen), .int(c.rejected), .int(Int64(c.gap))])
                }
            }
            if let old = replacing {
                let n = try db.run("UPDATE rankings SET replaced_by = ? WHERE id = ? AND replaced_by IS NULL", [.int(id), .int(old)])
                guard n == 1 else { throw StoreError("ranking #\(old) does not exist or was already replaced") }
                try db.run("DELETE FROM comparisons WHERE ranking_id = ?", [.int(old)])
            }
            return id
        }
    }

    private static let rankingColumns =
        "id, prompt_id, model_id, annotator, shown_order, ranks, status, reason, guideline_version, source, started_at, submitted_at, replaced_by"

    private func rankingRecord(_ s: Statement) -> RankingRecord {
        RankingRecord(
            id: s.int(0),
            ranking: NewRanking(
                promptId: s.int(1), modelId: s.optionalInt(2), annotator: s.text(3), shownOrder: Self.parseInts(s.text(4)).map(Int64.init),
                ranks: s.optionalText(5).map { Self.parseInts($0) }, status: RankingStatus(rawValue: s.text(6)) ?? .skipped,
                reason: s.optionalText(7), guidelineVersion: s.optionalText(8), source: s.text(9), startedAt: s.double(10), submittedAt: s.double(11)),
            replacedBy: s.optionalInt(12))
    }

    /// Rankings in submit order; by default only the current ones (not replaced by an edit).
    public func rankings(annotator: String? = nil, includeReplaced: Bool = false) throws -> [RankingRecord] {
        var clauses: [String] = [], params: [SQLValue] = []
        if let annotator { clauses.append("annotator = ?"); params.append(.text(annotator)) }
        if !includeReplaced { clauses.append("replaced_by IS NULL") }
        let sql =
            "SELECT \(Self.rankingColumns) FROM rankings" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY submitted_at, id"
        return try db.query(sql, params, rankingRecord)
    }

    /// One ranking by id.
    public func ranking(id: Int64) throws -> RankingRecord? {
        try db.query("SELECT \(Self.rankingColumns) FROM rankings WHERE id = ?", [.int(id)], rankingRecord).first
    }

    /// The comparisons of current rankings, grouped by ranking in id order.
    public func comparisons() throws -> [ComparisonRecord] {
        try db.query(
            """
            SELECT c.ranking_id, r.prompt_id, c.chosen_id, c.rejected_id, c.rank_gap FROM comparisons c
            JOIN rankings r ON r.id = c.ranking_id WHERE r.replaced_by IS NULL ORDER BY c.ranking_id, c.id
            """
        ) { ComparisonRecord(rankingId: $0.int(0), promptId: $0.int(1), chosenId: $0.int(2), rejectedId: $0.int(3), rankGap: Int($0.int(4))) }
    }

    /// The comparisons of current rankings, one group per ranking that implies at least one pair
    /// (ties imply none), in ranking id order. Train-reward and DPO read their data from here, so
    /// both see the same rankings, completions and pairs.
    public func comparisonGroups() throws -> [ComparisonGroup] {
        let comps = try comparisons()
        var out: [ComparisonGroup] = []
        var i = 0
        while i < comps.count {
            var j = i
            while j < comps.count && comps[j].rankingId == comps[i].rankingId { j += 1 }
            let group = comps[i..<j]
            var ids: [Int64] = []
            for c in group { for id in [c.chosenId, c.rejectedId] where !ids.contains(id) { ids.append(id) } }
            let pairs = group.map { ComparisonGroup.Pair(chosen: ids.firstIndex(of: $0.chosenId)!, rejected: ids.firstIndex(of: $0.rejectedId)!) }
            out.append(ComparisonGroup(rankingId: group.first!.rankingId, promptId: group.first!.promptId, completionIds: ids, pairs: pairs))
            i = j
        }
        return out
    }

    /// Items to label: for each prompt of `split` (nil: both), the completions each model wrote
    /// for it (at most the first 9), where there are at least two. In prompt id order.
    public func labelItems(split: PromptSplit? = .train) throws -> [LabelItem] {
        let rows = try db.query(
            """
            SELECT c.prompt_id, c.model_id, c.id FROM completions c JOIN prompts p ON p.id = c.prompt_id
            WHERE c.iteration IS NULL AND c.model_id IS NOT NULL\(split != nil ? " AND p.split = ?" : "")
            ORDER BY c.prompt_id, c.model_id, c.id
            """, split.map { [.text($0.rawValue)] } ?? []
        ) { ($0.int(0), $0.optionalInt(1), $0.int(2)) }
        var items: [LabelItem] = []
        var i = 0
        while i < rows.count {
            var j = i
            while j < rows.count && rows[j].0 == rows[i].0 && rows[j].1 == rows[i].1 { j += 1 }
            let ids = rows[i..<j].prefix(9).map(\.2)
            if ids.count >= 2 { items.append(LabelItem(promptId: rows[i].0, modelId: rows[i].1, completionIds: ids)) }
            i = j
        }
        return items
    }

    /// The prompt with this id.
    public func prompt(id: Int64) throws -> PromptRecord? {
        try db.query("SELECT id, text, source, split, metadata FROM prompts WHERE id = ?", [.int(id)]) {
            PromptRecord(
                id: $0.int(0), text: $0.text(1), source: $0.optionalText(2), split: PromptSplit(rawValue: $0.text(3)) ?? .train,
                metadata: $0.optionalText(4))
        }.first
    }

    static func jsonArray<T: BinaryInteger>(_ v: [T]) -> String { "[" + v.map { String($0) }.joined(separator: ",") + "]" }

    static func parseInts(_ s: String) -> [Int] {
        s.split(whereSeparator: { !($0.isNumber || $0 == "-") }).compactMap { Int($0) }
    }
}

/// A preference pair read from a file (TRL's `{"prompt", "chosen", "rejected"}`).
public struct ImportedPair: Equatable, Sendable {
    public var prompt: String, chosen: String, rejected: String
    /// How each completion ended: `eos` (it stopped; scoring appends the stop token) or `length`.
    public var chosenFinish = "eos", rejectedFinish = "eos"
    /// Who ranked the pair, when the file says; else the importer's `annotator`.
    public var annotator: String?
    /// Where the pair came from (an `rlhf` object of a file this project exported), as JSON;
    /// kept with the chosen completion and written back out by a later export.
    public var origin: String?
    public init(prompt: String, chosen: String, rejected: String) { self.prompt = prompt; self.chosen = chosen; self.rejected = rejected }
}

extension RunStore {
    /// Stores pairs as rankings of two, all in one transaction: a missing prompt is added to the
    /// train split, both texts become completions (of no model), and the chosen one ranks first.
    public func importPairs(_ pairs: [ImportedPair], annotator: String, stageRunId: Int64, source: String) throws -> (rankings: Int, newPrompts: Int)
    {
        try db.transaction {
            var newPrompts = 0
            let t = Date().timeIntervalSince1970
            for p in pairs {
                newPrompts += try db.run(
                    "INSERT OR IGNORE INTO prompts (text, source, split, created_at) VALUES (?, ?, 'train', ?)",
                    [.text(p.prompt), .text(source), .double(t)])
                let promptId = try db.scalarInt("SELECT id FROM prompts WHERE text = ?", [.text(p.prompt)])!
                var ids: [Int64] = []
                for (i, (text, finish)) in [(p.chosen, p.chosenFinish), (p.rejected, p.rejectedFinish)].enumerated() {
                    guard finish == "eos" || finish == "length" else { throw StoreError("a finish reason is eos or length, not \(finish)") }
                    let sampling = i == 0 && p.origin != nil ? "{\"source\":\"import\",\"origin\":\(p.origin!)}" : "{\"source\":\"import\"}"
                    try db.run(
                        """
                        INSERT INTO completions (prompt_id, model_id, stage_run_id, text, token_ids, finish_reason, logprob_sum, sampling, created_at)
                        VALUES (?, NULL, ?, ?, ?, ?, NULL, ?, ?)
                        """, [.int(promptId), .int(stageRunId), .text(text), .blob([]), .text(finish), .text(sampling), .double(t)])
                    ids.append(db.lastInsertId)
                }
                try db.run(
                    """
                    INSERT INTO rankings (prompt_id, model_id, annotator, shown_order, ranks, status, source, started_at, submitted_at)
                    VALUES (?, NULL, ?, ?, '[1,2]', 'ranked', 'import', ?, ?)
                    """, [.int(promptId), .text(p.annotator ?? annotator), .text(Self.jsonArray(ids)), .double(t), .double(t)])
                try db.run(
                    "INSERT INTO comparisons (ranking_id, chosen_id, rejected_id, rank_gap) VALUES (?, ?, ?, 1)",
                    [.int(db.lastInsertId), .int(ids[0]), .int(ids[1])])
            }
            return (pairs.count, newPrompts)
        }
    }
}
