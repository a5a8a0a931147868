import Foundation

/// A demonstration to store: the answer a person wrote (or a rule picked) for one prompt.
public struct NewDemonstration: Equatable, Sendable {
    public var promptId: Int64
    /// The completion text, without the prompt template and without EOS.
    public var text: String
    public var annotator: String
    /// `human`, `import`, `rankings` or `best-of:N`.
    public var source: String
    /// The completion the writer started from, when they corrected one.
    public var fromCompletionId: Int64?
    /// For imported conversations: the whole `messages` list as JSON; the last assistant turn's
    /// content is `text`.
    public var messages: String?
    public var guidelineVersion: String?
    public var startedAt: Double
    public var submittedAt: Double
    /// For a demonstration imported from a file `rlhf labels export` wrote: where it came from
    /// (the `origin` of the line's `rlhf` object), as JSON, so that a later export writes it
    /// back unchanged.
    public var origin: String?

    public init(
        promptId: Int64, text: String, annotator: String, source: String = "human", fromCompletionId: Int64? = nil,
        messages: String? = nil, guidelineVersion: String? = nil, startedAt: Double, submittedAt: Double, origin: String? = nil
    ) {
        self.promptId = promptId; self.text = text; self.annotator = annotator; self.source = source
        self.fromCompletionId = fromCompletionId; self.messages = messages; self.guidelineVersion = guidelineVersion
        self.startedAt = startedAt; self.submittedAt = submittedAt; self.origin = origin
    }
}

/// A stored demonstration.
public struct DemonstrationRecord: Equatable, Sendable {
    public let id: Int64
    public let demonstration: NewDemonstration
    /// The demonstration that replaced this one when it was edited.
    public let replacedBy: Int64?
}

/// Text typed in the writing screen and not yet submitted.
public struct DemonstrationDraft: Equatable, Sendable {
    public var promptId: Int64
    public var annotator: String
    public var text: String
    public var fromCompletionId: Int64?
    public var startedAt: Double
    public var savedAt: Double

    public init(promptId: Int64, annotator: String, text: String, fromCompletionId: Int64?, startedAt: Double, savedAt: Double) {
        self.promptId = promptId; self.annotator = annotator; self.text = text; self.fromCompletionId = fromCompletionId
        self.startedAt = startedAt; self.savedAt = savedAt
    }
}

extension RunStore {
    /// Stores a demonstration in one transaction, and drops the annotator's draft for that
    /// prompt in the same transaction. With `replacing`, the earlier demonstration is kept but
    /// marked replaced.
    @discardableResult
    public func submitDemonstration(_ d: NewDemonstration, replacing: Int64? = nil) throws -> Int64 {
        guard !d.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else {
            throw StoreError("a demonstration needs some text")
        }
        return try db.transaction {
            let id = try insertDemonstration(d)
            if let old = replacing {
                let n = try db.run(
                    "UPDATE demonstrations SET replaced_by = ? WHERE id = ? AND replaced_by IS NULL", [.int(id), .int(old)])
                guard n == 1 else { throw StoreError("demonstration #\(old) does not exist or was already replaced") }
            }
            try db.run("DELETE FROM demonstration_drafts WHERE prompt_id = ? AND annotator = ?", [.int(d.promptId), .text(d.annotator)])
            return id
        }
    }

    /// Inserts one row (inside the caller's transaction) and returns its id.
    func insertDemonstration(_ d: NewDemonstration) throws -> Int64 {
        try db.run(
            """
            INSERT INTO demonstrations (prompt_id, text, annotator, source, from_completion_id, messages, guideline_version, started_at, submitted_at, origin)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            """,
            [
                .int(d.promptId), .text(d.text), .text(d.annotator), .text(d.source), d.fromCompletionId.map { .int($0) } ?? .null,
                d.messages.map { .text($0) } ?? .null, d.guidelineVersion.map { .text($0) } ?? .null, .double(d.startedAt),
                .double(d.submittedAt), d.origin.map { .text($0) } ?? .null,
            ])
        return db.lastInsertId
    }

    private static let demonstrationColumns =
        "id, prompt_id, text, annotator, source, from_completion_id, messages, guideline_version, started_at, submitted_at, replaced_by, origin"

    private func demonstrationRecord(_ s: Statement) -> DemonstrationRecord {
        DemonstrationRecord(
            id: s.int(0),
            demonstration: NewDemonstration(
                promptId: s.int(1), text: s.text(2), annotator: s.text(3), source: s.text(4), fromCompletionId: s.optionalInt(5),
                messages: s.optionalText(6), guidelineVersion: s.optionalText(7), startedAt: s.double(8), submittedAt: s.double(9),
                origin: s.optionalText(11)),
            replacedBy: s.optionalInt(10))
    }

    /// Demonstrations in id order; replaced ones only with `includeReplaced`.
    public func demonstrations(annotator: String? = nil, includeReplaced: Bool = false) throws -> [DemonstrationRecord] {
        var sql = "SELECT \(Self.demonstrationColumns) FROM demonstrations WHERE 1"
        var args: [SQLValue] = []
        if !includeReplaced { sql += " AND replaced_by IS NULL" }
        if let a = annotator { sql += " AND annotator = ?"; args.append(.text(a)) }
        return try db.query(sql + " ORDER BY id", args) { demonstrationRecord($0) }
    }

    /// Saves (or overwrites) the annotator's draft for a prompt. Each save is its own
    /// transaction, so a killed screen loses at most what was typed since the last save.
    public func saveDraft(_ d: DemonstrationDraft) throws {
        try db.run(
            """
            INSERT OR REPLACE INTO demonstration_drafts (prompt_id, annotator, text, from_completion_id, started_at, saved_at)
            VALUES (?, ?, ?, ?, ?, ?)
            """,
            [
                .int(d.promptId), .text(d.annotator), .text(d.text), d.fromCompletionId.map { .int($0) } ?? .null,
                .double(d.startedAt), .double(d.savedAt),
            ])
    }

    /// The annotator's unsubmitted drafts, oldest save first.
    public func drafts(annotator: String) throws -> [DemonstrationDraft] {
        try db.query(
            """
            SELECT prompt_id, annotator, text, from_completion_id, started_at, saved_at FROM demonstration_drafts
            WHERE annotator = ? ORDER BY saved_at, prompt_id
            """, [.text(annotator)]
        ) {
            DemonstrationDraft(
                promptId: $0.int(0), annotator: $0.text(1), text: $0.text(2), fromCompletionId: $0.optionalInt(3),
                startedAt: $0.double(4), savedAt: $0.double(5))
        }
    }

    /// Drops the annotator's draft for a prompt (the writer discarded it).
    public func discardDraft(promptId: Int64, annotator: String) throws {
        try db.run("DELETE FROM demonstration_drafts WHERE prompt_id = ? AND annotator = ?", [.int(promptId), .text(annotator)])
    }
}

/// A demonstration read from a file (`rlhf labels import`): the raw prompt and the answer.
public struct ImportedDemonstration: Equatable, Sendable {
    /// The prompt as a person wrote it, before any template (for a conversation: its last user
    /// turn).
    public var prompt: String
    /// The answer, without the prompt and without a stop token's text.
    public var text: String
    /// For a conversation: the whole `messages` list, JSON.
    public var messages: String?
    /// Who wrote it, when the file says; else the importer's annotator.
    public var annotator: String?
    public var guidelineVersion: String?
    /// The provenance of a line `rlhf labels export` wrote, JSON.
    public var origin: String?

    public init(prompt: String, text: String, messages: String? = nil) { self.prompt = prompt; self.text = text; self.messages = messages }
}

extension RunStore {
    /// Prompts that have no current demonstration a person wrote or imported (rejection-sampled
    /// ones, sources `rankings` and `best-of:N`, do not count): what `rlhf label --write` shows.
    /// Train prompts first, then eval prompts, each in id order.
    public func promptsWithoutDemonstration(split: PromptSplit? = nil) throws -> [PromptRecord] {
        var sql = """
            SELECT id, text, source, split, metadata FROM prompts p
            WHERE NOT EXISTS (
                SELECT 1 FROM demonstrations d
                WHERE d.prompt_id = p.id AND d.replaced_by IS NULL AND d.source IN ('human', 'import'))
            """
        if split != nil { sql += " AND split = ?" }
        return try db.query(sql + " ORDER BY split = 'eval', id", split.map { [.text($0.rawValue)] } ?? []) {
            PromptRecord(
                id: $0.int(0), text: $0.text(1), source: $0.optionalText(2), split: PromptSplit(rawValue: $0.text(3)) ?? .train,
                metadata: $0.optionalText(4))
        }
    }

    /// Stores imported demonstrations, all in one transaction (source `import`): a prompt the
    /// run lacks joins the train split. Returns how many were stored and how many prompts were new.
    public func importDemonstrations(_ items: [ImportedDemonstration], annotator: String, source: String) throws -> (
        demonstrations: Int, newPrompts: Int
    ) {
        for (i, d) in items.enumerated() where d.text.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty {
            throw StoreError("demonstration \(i + 1) has no text")
        }
        return try db.transaction {
            var newPrompts = 0
            let t = Date().timeIntervalSince1970
            for d in items {
                newPrompts += try db.run(
                    "INSERT OR IGNORE INTO prompts (text, source, split, created_at) VALUES (?, ?, 'train', ?)",
                    [.text(d.prompt), .text(source), .double(t)])
                let promptId = try db.scalarInt("SELECT id FROM prompts WHERE text = ?", [.text(d.prompt)])!
                _ = try insertDemonstration(
                    NewDemonstration(
                        promptId: promptId, text: d.text, annotator: d.annotator ?? annotator, source: "import", messages: d.messages,
                        guidelineVersion: d.guidelineVersion, startedAt: t, submittedAt: t, origin: d.origin))
            }
            return (items.count, newPrompts)
        }
    }
}
