import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// The run database: `runs/NAME/run.sqlite` and the checkpoints it registers.
///
/// Every stage reads and writes through this typed API; no SQL lives outside this module. Each
/// process opens its own `RunStore`; WAL journaling and a busy timeout let a labeler and a
/// trainer work on one run at once. Writes that belong together happen in one transaction.
public final class RunStore {
    /// The run folder.
    public let folder: URL
    /// The schema version of the open database.
    public let schemaVersion: Int
    let db: Connection

    /// The database file inside a run folder.
    public static let databaseName = "run.sqlite"
    /// This program's version, recorded in `meta`.
    public static let programVersion = "0.1.0"

    /// The folder of run `name`: `runs/NAME` under the current directory, or `name` itself
    /// when it contains a slash (a path).
    public static func folder(forRun name: String) -> URL {
        if name.contains("/") { return URL(fileURLWithPath: name).standardizedFileURL }
        return URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent("runs").appendingPathComponent(name)
    }

    /// Opens the run in `folder`, upgrading an older schema in place. With `create`, a missing
    /// database is created; otherwise a missing run is an error saying how to make one.
    public init(folder: URL, create: Bool = false, migrations: [Migration] = Schema.migrations) throws {
        self.folder = folder
        let path = folder.appendingPathComponent(Self.databaseName).path
        if !create && !FileManager.default.fileExists(atPath: path) {
            throw StoreError("no run at \(folder.path) (no \(Self.databaseName)); create one with 'rlhf init --run NAME --base SOURCE'")
        }
        if create { try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true) }
        db = try Connection(path: path, create: create)
        schemaVersion = try Self.migrate(db, migrations, path: path)
    }

    /// Brings the database to the newest version in `migrations`, refusing a newer one.
    static func migrate(_ db: Connection, _ migrations: [Migration], path: String) throws -> Int {
        let known = migrations.last?.version ?? 0
        let found = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
        if found > known {
            throw StoreError(
                "\(path) has schema version \(found), newer than this program knows (\(known)); it was written by a newer rlhf, so upgrade rlhf to use this run"
            )
        }
        if found == 0 {
            let tables = try db.scalarInt("SELECT count(*) FROM sqlite_master WHERE type = 'table'") ?? 0
            if tables > 0 { throw StoreError("\(path) is an SQLite database but not an rlhf run (it has tables and no schema version)") }
        }
        var version = found
        for m in migrations where m.version > found {
            try db.transaction {
                // Another process may have migrated meanwhile; re-read under the write lock.
                let now = Int(try db.scalarInt("PRAGMA user_version") ?? 0)
                guard now < m.version else { return }
                try db.execute(m.sql)
                try db.execute("PRAGMA user_version = \(m.version)")
                let t = Date().timeIntervalSince1970
                if now == 0 { try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('created_at', ?)", [.text(String(t))]) }
                try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?)", [.text(String(m.version))])
                try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES ('program_version', ?)", [.text(programVersion)])
            }
            version = m.version
        }
        return version
    }

    /// Sets a value of the `meta` table.
    public func setMeta(_ key: String, _ value: String) throws {
        try db.run("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", [.text(key), .text(value)])
    }

    /// A value of the `meta` table.
    public func meta(_ key: String) throws -> String? {
        try db.scalarText("SELECT value FROM meta WHERE key = ?", [.text(key)])
    }

    // MARK: Stage runs

    /// Records the start of a stage run (status running) and returns its id. Runs left
    /// "running" by a process that no longer exists are marked interrupted first.
    public func beginStageRun(stage: String, config: String, seed: Int64?) throws -> Int64 {
        try markInterruptedRuns()
        return try db.transaction {
            try db.run(
                "INSERT INTO stage_runs (stage, config, seed, started_at, status, pid, host) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                [
                    .text(stage), .text(config), seed.map { .int($0) } ?? .null, .double(Date().timeIntervalSince1970),
                    .int(Int64(getpid())), .text(Self.hostName),
                ])
            return db.lastInsertId
        }
    }

    /// Records how a stage run ended.
    public func finishStageRun(_ id: Int64, status: StageStatus, error: String? = nil) throws {
        try db.run(
            "UPDATE stage_runs SET status = ?, finished_at = ?, error = ? WHERE id = ?",
            [.text(status.rawValue), .double(Date().timeIntervalSince1970), error.map { .text($0) } ?? .null, .int(id)])
    }

    /// Takes over an unfinished stage run (to resume it): running again, owned by this process.
    public func reopenStageRun(_ id: Int64) throws {
        try db.run(
            "UPDATE stage_runs SET status = 'running', finished_at = NULL, error = NULL, pid = ?, host = ? WHERE id = ?",
            [.int(Int64(getpid())), .text(Self.hostName), .int(id)])
    }

    /// The latest run of `stage`, to resume it: refused with a message saying what to do when
    /// there is none, when it finished, or when another process is running it. `label` names the
    /// stage in messages ("PPO") and `command` is how a new run starts ("rlhf ppo").
    public func stageRunToResume(_ stage: String, label: String, command: String) throws -> StageRunRecord {
        try markInterruptedRuns()
        guard let last = try stageRuns(stage: stage).first else {
            throw StoreError("there is no \(label) run to resume; start one with '\(command)'")
        }
        guard last.status != .succeeded else { throw StoreError("the latest \(label) run (#\(last.id)) finished; start a new one with '\(command)'") }
        guard last.status != .running else { throw StoreError("\(label) run #\(last.id) is still running in another process") }
        return last
    }

    /// Forgets what a stage run wrote after `step` (metrics past it, and samples of later
    /// iterations), so that a resumed run rewrites them.
    public func truncateStageRun(_ id: Int64, afterStep step: Int) throws {
        try db.transaction {
            try db.run("DELETE FROM metrics WHERE stage_run_id = ? AND step > ?", [.int(id), .int(Int64(step))])
            try db.run("DELETE FROM completions WHERE stage_run_id = ? AND iteration > ?", [.int(id), .int(Int64(step))])
        }
    }

    /// Marks runs whose process on this host is gone (killed, crashed) as interrupted.
    @discardableResult
    public func markInterruptedRuns() throws -> Int {
        let running = try db.query("SELECT id, pid, host FROM stage_runs WHERE status = 'running'") {
            ($0.int(0), $0.optionalInt(1), $0.optionalText(2))
        }
        var n = 0
        for (id, pid, host) in running where host == Self.hostName {
            guard let pid, pid > 0, kill(pid_t(pid), 0) != 0, errno == ESRCH else { continue }
            n += try db.run(
                "UPDATE stage_runs SET status = 'interrupted', finished_at = ?, error = 'the process ended without finishing (killed or crashed)' WHERE id = ? AND status = 'running'",
                [.double(Date().timeIntervalSince1970), .int(id)])
        }
        return n
    }

    static let hostName: String = {
        var buf = [CChar](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(cString: buf)
    }()

    /// Stage runs, newest first, optionally of one stage.
    public func stageRuns(stage: String? = nil) throws -> [StageRunRecord] {
        let sql =
            "SELECT id, stage, config, seed, started_at, finished_at, status, error FROM stage_runs"
            + (stage != nil ? " WHERE stage = ?" : "") + " ORDER BY id DESC"
        return try db.query(sql, stage.map { [.text($0)] } ?? []) {
            StageRunRecord(
                id: $0.int(0), stage: $0.text(1), config: $0.text(2), seed: $0.optionalInt(3), startedAt: $0.double(4),
                finishedAt: $0.optionalDouble(5), status: StageStatus(rawValue: $0.text(6)) ?? .failed, error: $0.optionalText(7))
        }
    }

    /// A resume value of a stage run.
    public func setStageState(_ stageRunId: Int64, _ key: String, _ value: String) throws {
        try db.run("INSERT OR REPLACE INTO stage_state (stage_run_id, key, value) VALUES (?, ?, ?)", [.int(stageRunId), .text(key), .text(value)])
    }

    /// A resume value of a stage run.
    public func stageState(_ stageRunId: Int64, _ key: String) throws -> String? {
        try db.scalarText("SELECT value FROM stage_state WHERE stage_run_id = ? AND key = ?", [.int(stageRunId), .text(key)])
    }

    // MARK: Models

    /// Registers a checkpoint folder (relative to the run folder) under `role`.
    /// LoRA adapters name the registered model they adapt as `baseId`; `sha256` is then that of
    /// their adapter_model.safetensors. A model that came from the Hugging Face Hub records its
    /// `origin` (the repository, the revision asked for and the commit).
    @discardableResult
    public func registerModel(
        role: ModelRole, path: String, sha256: String, config: String, promptTemplate: String?,
        parentId: Int64?, stageRunId: Int64?, step: Int? = nil, note: String? = nil, baseId: Int64? = nil, origin: ModelOrigin? = nil
    ) throws -> ModelRecord {
        try db.transaction {
            if let b = baseId, try model(id: b) == nil { throw StoreError("cannot register adapters over model #\(b): the run has no such model") }
            try db.run(
                """
                INSERT INTO models (role, path, sha256, config, prompt_template, parent_id, stage_run_id, step, note, created_at, base_id, origin)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(role.rawValue), .text(path), .text(sha256), .text(config), promptTemplate.map { .text($0) } ?? .null,
                    parentId.map { .int($0) } ?? .null, stageRunId.map { .int($0) } ?? .null, step.map { .int(Int64($0)) } ?? .null,
                    note.map { .text($0) } ?? .null, .double(Date().timeIntervalSince1970), baseId.map { .int($0) } ?? .null,
                    origin.map { .text($0.json) } ?? .null,
                ])
            return try model(id: db.lastInsertId)!
        }
    }

    private static let modelColumns = "id, role, path, sha256, config, prompt_template, parent_id, stage_run_id, step, note, created_at, base_id"
    private func modelRecord(_ s: Statement) -> ModelRecord {
        ModelRecord(
            id: s.int(0), role: ModelRole(rawValue: s.text(1)) ?? .base, path: s.text(2), sha256: s.text(3), config: s.text(4),
            promptTemplate: s.optionalText(5), parentId: s.optionalInt(6), stageRunId: s.optionalInt(7),
            step: s.optionalInt(8).map(Int.init), note: s.optionalText(9), createdAt: s.double(10), baseId: s.optionalInt(11))
    }

    /// The model with this id.
    public func model(id: Int64) throws -> ModelRecord? {
        try db.query("SELECT \(Self.modelColumns) FROM models WHERE id = ?", [.int(id)], modelRecord).first
    }

    /// Where a registered model came from on the Hugging Face Hub; nil for a model from a local
    /// folder or trained in the run. Fails on a stored origin that is not valid JSON of that shape.
    public func modelOrigin(id: Int64) throws -> ModelOrigin? {
        guard let text = try db.query("SELECT origin FROM models WHERE id = ?", [.int(id)], { $0.optionalText(0) }).first ?? nil else { return nil }
        guard let origin = ModelOrigin(json: text) else { throw StoreError("model #\(id): its recorded origin is not valid (\(text))") }
        return origin
    }

    /// The most recently registered model of a role (the current policy, for example).
    public func latestModel(role: ModelRole) throws -> ModelRecord? {
        try db.query("SELECT \(Self.modelColumns) FROM models WHERE role = ? ORDER BY id DESC LIMIT 1", [.text(role.rawValue)], modelRecord).first
    }

    /// Every registered model, oldest first.
    /// SQLite's `PRAGMA integrity_check`: `["ok"]` for a sound database, else its findings.
    public func integrityCheck() throws -> [String] {
        try db.query("PRAGMA integrity_check") { $0.text(0) }
    }

    public func models() throws -> [ModelRecord] {
        try db.query("SELECT \(Self.modelColumns) FROM models ORDER BY id", [], modelRecord)
    }

    /// The folder of a registered checkpoint: its path is relative to the run folder and must
    /// stay inside it. A run folder may come from someone else, so a path that is absolute, goes
    /// up through `..`, or reaches outside through a symbolic link is refused, not followed.
    public func checkpointFolder(_ m: ModelRecord) throws -> URL {
        let outside =
            "the \(m.role.rawValue) model #\(m.id) is registered at '\(m.path)', which leads outside the run folder; checkpoints must live under \(folder.path) (this run database may come from an untrusted source)"
        guard !m.path.isEmpty, !m.path.hasPrefix("/"), !m.path.split(separator: "/").contains("..") else { throw StoreError(outside) }
        let dir = folder.appendingPathComponent(m.path)
        guard Self.isInside(dir, folder) else { throw StoreError(outside) }
        return dir
    }

    /// Whether `url`, with every symbolic link resolved, is `root` or below it (a path that
    /// does not exist yet is judged by its nearest existing ancestor).
    static func isInside(_ url: URL, _ root: URL) -> Bool {
        func real(_ u: URL) -> String? {
            var u = u.standardizedFileURL
            var rest: [String] = []
            while true {
                if let p = realpath(u.path, nil) {
                    defer { free(p) }
                    return ([String(cString: p)] + rest.reversed()).joined(separator: "/")
                }
                if u.path == "/" { return nil }
                rest.append(u.lastPathComponent)
                u = u.deletingLastPathComponent()
            }
        }
        guard let r = real(root), let p = real(url) else { return false }
        return p == r || p.hasPrefix(r.hasSuffix("/") ? r : r + "/")
    }

    /// The folder of a registered checkpoint, after checking that it is inside the run folder
    /// (as are the files in it, symbolic links resolved) and that its weights are there and
    /// unchanged since registration. `sha256` hashes a file (the compute core provides it; this
    /// module depends on SQLite only).
    public func verifiedFolder(_ m: ModelRecord, sha256: (URL) throws -> String) throws -> URL {
        let dir = try checkpointFolder(m)
        let weights = dir.appendingPathComponent(m.weightsFile)
        guard FileManager.default.fileExists(atPath: weights.path) else {
            throw StoreError(
                "the \(m.role.rawValue) model #\(m.id) is registered at \(dir.path), but \(weights.lastPathComponent) is missing there; restore the file or re-create the run"
            )
        }
        for name in (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
        where !Self.isInside(dir.appendingPathComponent(name), folder) {
            throw StoreError(
                "the \(m.role.rawValue) model #\(m.id) has \(name) linking outside the run folder; refusing to read it (this run database may come from an untrusted source)"
            )
        }
        let sha = try sha256(weights)
        guard sha == m.sha256 else {
            throw StoreError(
                "the \(m.role.rawValue) model #\(m.id) at \(weights.path) has changed since it was registered (SHA-256 \(sha.prefix(12))…, expected \(m.sha256.prefix(12))…); it was modified or corrupted"
            )
        }
        return dir
    }

    /// The verified folders a checkpoint is built from, full weights first: one folder for full
    /// weights; for LoRA adapters, their base's chain followed by their own folder.
    public func verifiedChain(_ m: ModelRecord, sha256: (URL) throws -> String) throws -> [URL] {
        var chain: [URL] = [], seen: Set<Int64> = [], cur = m
        while true {
            guard seen.insert(cur.id).inserted, seen.count <= 16 else {
                throw StoreError("model #\(m.id): its adapters' bases form a loop or a chain deeper than 16; the run database is damaged")
            }
            chain.append(try verifiedFolder(cur, sha256: sha256))
            guard let b = cur.baseId else { break }
            guard let base = try model(id: b) else { throw StoreError("model #\(cur.id) adapts model #\(b), which is not in the run") }
            cur = base
        }
        return chain.reversed()
    }

    // MARK: Prompts

    /// Imports prompts in one transaction: texts already in the run (or repeated in `prompts`)
    /// are skipped. Returns the imported and skipped counts.
    public func addPrompts(_ prompts: [NewPrompt], split: PromptSplit, source: String?) throws -> (imported: Int, skipped: Int) {
        try db.transaction {
            var imported = 0, skipped = 0
            let t = Date().timeIntervalSince1970
            for p in prompts {
                let n = try db.run(
                    "INSERT OR IGNORE INTO prompts (text, source, split, metadata, created_at) VALUES (?, ?, ?, ?, ?)",
                    [
                        .text(p.text), source.map { .text($0) } ?? .null, .text(split.rawValue),
                        p.metadata.map { .text($0) } ?? .null, .double(t),
                    ])
                if n == 1 { imported += 1 } else { skipped += 1 }
            }
            return (imported, skipped)
        }
    }

    /// Prompts in id order, optionally of one split.
    public func prompts(split: PromptSplit? = nil) throws -> [PromptRecord] {
        let sql = "SELECT id, text, source, split, metadata FROM prompts" + (split != nil ? " WHERE split = ?" : "") + " ORDER BY id"
        return try db.query(sql, split.map { [.text($0.rawValue)] } ?? []) {
            PromptRecord(
                id: $0.int(0), text: $0.text(1), source: $0.optionalText(2), split: PromptSplit(rawValue: $0.text(3)) ?? .train,
                metadata: $0.optionalText(4))
        }
    }

    // MARK: Completions

    /// Stores completions in one transaction (a batch lands whole or not at all).
    public func addCompletions(_ items: [NewCompletion]) throws {
        try db.transaction {
            let t = Date().timeIntervalSince1970
            for c in items {
                try db.run(
                    """
                    INSERT INTO completions (prompt_id, model_id, stage_run_id, text, token_ids, finish_reason, logprob_sum, sampling, iteration, score, created_at)
                    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                    """,
                    [
                        .int(c.promptId), c.modelId.map { .int($0) } ?? .null, .int(c.stageRunId), .text(c.text), .blob(TokenBlob.encode(c.tokenIds)),
                        .text(c.finishReason), c.logprobSum.map { .double($0) } ?? .null, .text(c.sampling),
                        c.iteration.map { .int(Int64($0)) } ?? .null,
                        c.score.map { .double($0) } ?? .null, .double(t),
                    ])
            }
        }
    }

    /// How many completions each prompt has from `modelId` (prompts with none are absent).
    public func completionCounts(modelId: Int64) throws -> [Int64: Int] {
        var out: [Int64: Int] = [:]
        for (p, n) in try db.query(
            "SELECT prompt_id, count(*) FROM completions WHERE model_id = ? AND iteration IS NULL GROUP BY prompt_id", [.int(modelId)],
            { ($0.int(0), Int($0.int(1))) })
        {
            out[p] = n
        }
        return out
    }

    private static let completionColumns =
        "id, prompt_id, model_id, stage_run_id, text, token_ids, finish_reason, logprob_sum, sampling, iteration, score"
    private func completionRecord(_ s: Statement) -> CompletionRecord {
        CompletionRecord(
            id: s.int(0), promptId: s.int(1), modelId: s.optionalInt(2), stageRunId: s.int(3), text: s.text(4),
            tokenIds: TokenBlob.decode(s.blob(5)), finishReason: s.text(6), logprobSum: s.optionalDouble(7), sampling: s.text(8),
            iteration: s.optionalInt(9).map(Int.init), score: s.optionalDouble(10))
    }

    /// Completions of a prompt (generated ones, not PPO samples), in id order.
    public func completions(promptId: Int64) throws -> [CompletionRecord] {
        try db.query(
            "SELECT \(Self.completionColumns) FROM completions WHERE prompt_id = ? AND iteration IS NULL ORDER BY id", [.int(promptId)],
            completionRecord)
    }

    /// Completions by id (missing ids are absent from the result).
    public func completions(ids: [Int64]) throws -> [Int64: CompletionRecord] {
        var out: [Int64: CompletionRecord] = [:]
        for chunk in stride(from: 0, to: ids.count, by: 500).map({ Array(ids[$0..<min($0 + 500, ids.count)]) }) {
            let marks = chunk.map { _ in "?" }.joined(separator: ",")
            for c in try db.query(
                "SELECT \(Self.completionColumns) FROM completions WHERE id IN (\(marks))", chunk.map { .int($0) }, completionRecord)
            {
                out[c.id] = c
            }
        }
        return out
    }

    /// The completions a stage run wrote (not samples kept per iteration), in id order.
    public func completions(stageRunId: Int64) throws -> [CompletionRecord] {
        try db.query(
            "SELECT \(Self.completionColumns) FROM completions WHERE stage_run_id = ? AND iteration IS NULL ORDER BY id", [.int(stageRunId)],
            completionRecord)
    }

    /// The samples a stage run kept per iteration (PPO), in iteration and id order.
    public func samples(stageRunId: Int64) throws -> [CompletionRecord] {
        try db.query(
            "SELECT \(Self.completionColumns) FROM completions WHERE stage_run_id = ? AND iteration IS NOT NULL ORDER BY iteration, id",
            [.int(stageRunId)], completionRecord)
    }

    // MARK: Metrics

    /// Writes metric values for one step in one transaction (a rewrite of a step replaces it).
    public func logMetrics(stageRunId: Int64, step: Int, _ values: [(String, Double)]) throws {
        try db.transaction {
            let t = Date().timeIntervalSince1970
            for (name, v) in values {
                try db.run(
                    "INSERT OR REPLACE INTO metrics (stage_run_id, name, step, value, time) VALUES (?, ?, ?, ?, ?)",
                    [.int(stageRunId), .text(name), .int(Int64(step)), v.isFinite ? .double(v) : (v.isNaN ? .null : .double(v)), .double(t)])
            }
        }
    }

    /// The points of some metrics (all when `names` is nil), by stage run, name and step.
    public func metrics(stageRunId: Int64? = nil, names: [String]? = nil, afterStep: Int? = nil) throws -> [MetricPoint] {
        var clauses: [String] = [], params: [SQLValue] = []
        if let stageRunId { clauses.append("stage_run_id = ?"); params.append(.int(stageRunId)) }
        if let names, !names.isEmpty {
            clauses.append("name IN (" + names.map { _ in "?" }.joined(separator: ",") + ")")
            params += names.map { .text($0) }
        }
        if let afterStep { clauses.append("step > ?"); params.append(.int(Int64(afterStep))) }
        let sql =
            "SELECT stage_run_id, name, step, value, time FROM metrics" + (clauses.isEmpty ? "" : " WHERE " + clauses.joined(separator: " AND "))
            + " ORDER BY stage_run_id, name, step"
        return try db.query(sql, params) {
            MetricPoint(stageRunId: $0.int(0), name: $0.text(1), step: Int($0.int(2)), value: $0.optionalDouble(3) ?? .nan, time: $0.double(4))
        }
    }

    /// How many points the named metrics have, over all stage runs (a cheap change detector).
    public func metricCount(names: [String]) throws -> Int {
        guard !names.isEmpty else { return 0 }
        let marks = names.map { _ in "?" }.joined(separator: ",")
        return Int(try db.scalarInt("SELECT count(*) FROM metrics WHERE name IN (\(marks))", names.map { .text($0) }) ?? 0)
    }

    /// Whether a stage run logged any metric.
    public func hasMetrics(stageRunId: Int64) throws -> Bool {
        try db.scalarInt("SELECT EXISTS (SELECT 1 FROM metrics WHERE stage_run_id = ?)", [.int(stageRunId)]) == 1
    }

    /// The latest value of a metric over every stage run of `stage`, with its step.
    public func latestMetric(stage: String, name: String) throws -> (step: Int, value: Double)? {
        try db.query(
            """
            SELECT m.step, m.value FROM metrics m JOIN stage_runs s ON s.id = m.stage_run_id
            WHERE s.stage = ? AND m.name = ? ORDER BY m.stage_run_id DESC, m.step DESC LIMIT 1
            """, [.text(stage), .text(name)]
        ) { (Int($0.int(0)), $0.optionalDouble(1) ?? .nan) }.first
    }

    /// The value of a metric at one step of the latest stage run of `stage` that logged it.
    public func metric(stage: String, name: String, step: Int) throws -> Double? {
        try db.query(
            """
            SELECT m.value FROM metrics m JOIN stage_runs s ON s.id = m.stage_run_id
            WHERE s.stage = ? AND m.name = ? AND m.step = ? ORDER BY m.stage_run_id DESC LIMIT 1
            """, [.text(stage), .text(name), .int(Int64(step))]
        ) { $0.optionalDouble(0) ?? .nan }.first
    }

    // MARK: Status

    /// Counts of everything in the run.
    public func counts() throws -> RunCounts {
        var c = RunCounts()
        for (k, n) in try db.query("SELECT split, count(*) FROM prompts GROUP BY split", [], { ($0.text(0), Int($0.int(1))) }) {
            c.promptsBySplit[k] = n
        }
        c.completions = Int(try db.scalarInt("SELECT count(*) FROM completions WHERE iteration IS NULL") ?? 0)
        for (k, n) in try db.query(
            "SELECT status, count(*) FROM rankings WHERE replaced_by IS NULL GROUP BY status", [], { ($0.text(0), Int($0.int(1))) })
        {
            c.rankingsByStatus[k] = n
            c.rankings += n
        }
        c.comparisons = Int(
            try db.scalarInt("SELECT count(*) FROM comparisons c JOIN rankings r ON r.id = c.ranking_id WHERE r.replaced_by IS NULL") ?? 0)
        for (k, n) in try db.query("SELECT role, count(*) FROM models GROUP BY role", [], { ($0.text(0), Int($0.int(1))) }) { c.modelsByRole[k] = n }
        for (k, n) in try db.query("SELECT status, count(*) FROM stage_runs GROUP BY status", [], { ($0.text(0), Int($0.int(1))) }) {
            c.stageRunsByStatus[k] = n
        }
        return c
    }
}
