import Foundation

/// A side of the judging screen.
public enum JudgeSide: String, CaseIterable, Sendable {
    case a = "A", b = "B"

    /// The other side.
    public var other: JudgeSide { self == .a ? .b : .a }
}

/// What an annotator answered, as shown on screen: the side they preferred, a tie, or a skip.
public enum JudgeVerdict: String, CaseIterable, Sendable {
    case a = "A", b = "B", tie, skip
}

/// A verdict read for the first model of a comparison: its completion won, lost, tied, or the
/// item was skipped.
public enum JudgeOutcome: String, CaseIterable, Sendable {
    case win, loss, tie, skip
}

/// A judgment to store: one annotator's verdict on one item, blind to which model wrote which side.
public struct NewJudgment: Equatable, Sendable {
    /// The compare stage run that sampled the item.
    public var stageRunId: Int64
    public var promptId: Int64
    /// The first model (`--a`) and the second (`--b`).
    public var modelId: Int64, otherModelId: Int64
    /// The first model's completion and the second's.
    public var completionId: Int64, otherCompletionId: Int64
    /// The side the first model's completion was shown on.
    public var firstSide: JudgeSide
    public var verdict: JudgeVerdict
    public var annotator: String
    public var shownAt: Double, judgedAt: Double

    public init(
        stageRunId: Int64, promptId: Int64, modelId: Int64, otherModelId: Int64, completionId: Int64, otherCompletionId: Int64,
        firstSide: JudgeSide, verdict: JudgeVerdict, annotator: String, shownAt: Double, judgedAt: Double
    ) {
        self.stageRunId = stageRunId; self.promptId = promptId; self.modelId = modelId; self.otherModelId = otherModelId
        self.completionId = completionId; self.otherCompletionId = otherCompletionId; self.firstSide = firstSide
        self.verdict = verdict; self.annotator = annotator; self.shownAt = shownAt; self.judgedAt = judgedAt
    }

    /// The verdict un-blinded: for the first model, a win when the annotator preferred the side
    /// its completion was shown on.
    public var outcome: JudgeOutcome {
        switch verdict {
        case .tie: return .tie
        case .skip: return .skip
        case .a, .b: return verdict.rawValue == firstSide.rawValue ? .win : .loss
        }
    }

    /// The preferred completion and the other one; nil for a tie or a skip.
    public var chosenAndRejected: (chosen: Int64, rejected: Int64)? {
        switch outcome {
        case .win: return (completionId, otherCompletionId)
        case .loss: return (otherCompletionId, completionId)
        case .tie, .skip: return nil
        }
    }
}

/// A stored judgment.
public struct JudgmentRecord: Equatable, Sendable {
    public let id: Int64
    public let judgment: NewJudgment
    /// The judgment that replaced this one when it was undone and judged again.
    public let replacedBy: Int64?
}

extension RunStore {
    /// Stores a judgment in its own transaction. With `replacing`, the earlier judgment (the
    /// same annotator's, of the same item) is kept but marked replaced by the new one. An
    /// annotator has one current judgment per item: a second one without `replacing` is refused.
    @discardableResult
    public func submitJudgment(_ j: NewJudgment, replacing: Int64? = nil) throws -> Int64 {
        try db.transaction {
            let item: [SQLValue] = [.int(j.stageRunId), .text(j.annotator), .int(j.completionId), .int(j.otherCompletionId)]
            let sameItem = "stage_run_id = ? AND annotator = ? AND completion_id = ? AND other_completion_id = ?"
            if let old = replacing {
                // Out of the current set first (pointing at itself), so that the new row may take its place.
                let n = try db.run("UPDATE judgments SET replaced_by = id WHERE id = ? AND replaced_by IS NULL AND \(sameItem)", [.int(old)] + item)
                guard n == 1 else { throw StoreError("judgment #\(old) is not the current judgment of this item by \(j.annotator)") }
            } else if try db.scalarInt("SELECT count(*) FROM judgments WHERE replaced_by IS NULL AND \(sameItem)", item)! > 0 {
                throw StoreError("\(j.annotator) has already judged this item (in another session?)")
            }
            try db.run(
                """
                INSERT INTO judgments (stage_run_id, prompt_id, model_id, other_model_id, completion_id, other_completion_id,
                                       first_side, verdict, annotator, shown_at, judged_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .int(j.stageRunId), .int(j.promptId), .int(j.modelId), .int(j.otherModelId), .int(j.completionId),
                    .int(j.otherCompletionId), .text(j.firstSide.rawValue), .text(j.verdict.rawValue), .text(j.annotator),
                    .double(j.shownAt), .double(j.judgedAt),
                ])
            let id = db.lastInsertId
            if let old = replacing { try db.run("UPDATE judgments SET replaced_by = ? WHERE id = ?", [.int(id), .int(old)]) }
            return id
        }
    }

    private static let judgmentColumns =
        "id, stage_run_id, prompt_id, model_id, other_model_id, completion_id, other_completion_id, first_side, verdict, annotator, shown_at, judged_at, replaced_by"

    private func judgmentRecord(_ s: Statement) -> JudgmentRecord {
        JudgmentRecord(
            id: s.int(0),
            judgment: NewJudgment(
                stageRunId: s.int(1), promptId: s.int(2), modelId: s.int(3), otherModelId: s.int(4), completionId: s.int(5),
                otherCompletionId: s.int(6), firstSide: JudgeSide(rawValue: s.text(7)) ?? .a, verdict: JudgeVerdict(rawValue: s.text(8)) ?? .skip,
                annotator: s.text(9), shownAt: s.double(10), judgedAt: s.double(11)),
            replacedBy: s.optionalInt(12))
    }

    /// Judgments in the order they were made; by default only the current ones (not replaced).
    public func judgments(stageRunId: Int64? = nil, annotator: String? = nil, includeReplaced: Bool = false) throws -> [JudgmentRecord] {
        var clauses: [String] = [], params: [SQLValue] = []
        if let stageRunId { clauses.append("stage_run_id = ?"); params.append(.int(stageRunId)) }
        if let annotator { clauses.append("annotator = ?"); params.append(.text(annotator)) }
        if !includeReplaced { clauses.append("replaced_by IS NULL") }
        let sql =
            "SELECT \(Self.judgmentColumns) FROM judgments" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY judged_at, id"
        return try db.query(sql, params, judgmentRecord)
    }

    /// The compare stage runs that hold judgments, newest first.
    public func judgedStageRuns() throws -> [Int64] {
        try db.query("SELECT DISTINCT stage_run_id FROM judgments ORDER BY stage_run_id DESC") { $0.int(0) }
    }

    /// The current decided judgments (neither a tie nor a skip) as comparisons: the preferred
    /// completion chosen, the other rejected, un-blinded through the side each was shown on. In
    /// id order.
    public func judgmentComparisons() throws -> [(judgmentId: Int64, promptId: Int64, chosenId: Int64, rejectedId: Int64)] {
        try judgments().sorted { $0.id < $1.id }.compactMap { r in
            r.judgment.chosenAndRejected.map { (r.id, r.judgment.promptId, $0.chosen, $0.rejected) }
        }
    }
}
