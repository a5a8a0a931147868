/// One step of the schema's history: the SQL that takes a database from `version - 1` to
/// `version`. Migrations only ever append; a released migration is never edited.
public struct Migration: Sendable {
    /// The schema version this migration produces.
    public let version: Int
    /// Statements run inside one transaction.
    public let sql: String
    /// A migration.
    public init(version: Int, sql: String) { self.version = version; self.sql = sql }
}

/// The run database's schema history. Times are Unix seconds (REAL); JSON columns hold UTF-8
/// JSON text; token ids are little-endian Int32 blobs.
public enum Schema {
    /// Every migration, oldest first; the last one's version is what this program writes.
    public static let migrations: [Migration] = [version1, version2]

    /// The newest schema this program knows.
    public static var currentVersion: Int { migrations.last!.version }

    /// LoRA checkpoints: a folder holding adapters (`adapter_model.safetensors`, fingerprinted in
    /// `sha256`) over the registered model `base_id`, whose weights they are added to.
    static let version2 = Migration(
        version: 2,
        sql: """
            ALTER TABLE models ADD COLUMN base_id INTEGER REFERENCES models(id);
            """)

    static let version1 = Migration(
        version: 1,
        sql: """
            CREATE TABLE meta (
                key   TEXT PRIMARY KEY,
                value TEXT NOT NULL
            );

            -- One execution of a stage (init, prompts, generate, label, train-reward, ppo).
            CREATE TABLE stage_runs (
                id          INTEGER PRIMARY KEY,
                stage       TEXT NOT NULL,
                config      TEXT NOT NULL,              -- every option, as JSON
                seed        INTEGER,
                started_at  REAL NOT NULL,
                finished_at REAL,
                status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'interrupted')),
                error       TEXT,
                pid         INTEGER,
                host        TEXT
            );

            -- Checkpoints: Hugging Face GPT-2 folders under checkpoints/, fingerprinted by the SHA-256 of
            -- their model.safetensors.
            CREATE TABLE models (
                id              INTEGER PRIMARY KEY,
                role            TEXT NOT NULL CHECK (role IN ('base', 'policy', 'reference', 'reward', 'value')),
                path            TEXT NOT NULL,          -- folder, relative to the run folder
                sha256          TEXT NOT NULL,
                config          TEXT NOT NULL,          -- the GPT-2 config, as JSON
                prompt_template TEXT,
                parent_id       INTEGER REFERENCES models(id),
                stage_run_id    INTEGER REFERENCES stage_runs(id),
                step            INTEGER,                -- PPO iteration or reward epoch that produced it
                note            TEXT,
                created_at      REAL NOT NULL
            );
            CREATE INDEX models_role ON models(role, id);

            CREATE TABLE prompts (
                id         INTEGER PRIMARY KEY,
                text       TEXT NOT NULL UNIQUE,
                source     TEXT,
                split      TEXT NOT NULL CHECK (split IN ('train', 'eval')),
                metadata   TEXT,                        -- other keys of the imported JSON line
                created_at REAL NOT NULL
            );

            CREATE TABLE completions (
                id            INTEGER PRIMARY KEY,
                prompt_id     INTEGER NOT NULL REFERENCES prompts(id),
                model_id      INTEGER REFERENCES models(id),   -- NULL for imported text
                stage_run_id  INTEGER NOT NULL REFERENCES stage_runs(id),
                text          TEXT NOT NULL,            -- without the prompt template, without EOS
                token_ids     BLOB NOT NULL,            -- generated tokens, EOS included when present; empty when imported
                finish_reason TEXT NOT NULL CHECK (finish_reason IN ('eos', 'length')),
                logprob_sum   REAL,                     -- NULL when unknown (imported)
                sampling      TEXT NOT NULL,            -- temperature, top-k, top-p, max tokens, seed
                iteration     INTEGER,                  -- PPO iteration for samples kept for inspection
                score         REAL,                     -- reward-model score, when scored
                created_at    REAL NOT NULL
            );
            CREATE INDEX completions_prompt_model ON completions(prompt_id, model_id);
            CREATE INDEX completions_stage_run ON completions(stage_run_id, iteration);

            -- One submit, skip or flag by one annotator. An edit keeps the old row, marked replaced.
            CREATE TABLE rankings (
                id                INTEGER PRIMARY KEY,
                prompt_id         INTEGER NOT NULL REFERENCES prompts(id),
                model_id          INTEGER REFERENCES models(id),   -- whose completions were ranked
                annotator         TEXT NOT NULL,
                shown_order       TEXT NOT NULL,        -- completion ids in the order shown, JSON
                ranks             TEXT,                 -- rank per shown completion (1 = best, ties equal), JSON
                status            TEXT NOT NULL CHECK (status IN ('ranked', 'skipped', 'flagged')),
                reason            TEXT,
                guideline_version TEXT,
                source            TEXT NOT NULL DEFAULT 'human',   -- human, simulated:RULE, import
                started_at        REAL NOT NULL,
                submitted_at      REAL NOT NULL,
                replaced_by       INTEGER REFERENCES rankings(id)
            );
            CREATE INDEX rankings_prompt ON rankings(prompt_id, annotator);
            CREATE INDEX rankings_annotator ON rankings(annotator, submitted_at);

            -- The chosen/rejected pairs a ranking implies: every pair with strictly different ranks.
            CREATE TABLE comparisons (
                id          INTEGER PRIMARY KEY,
                ranking_id  INTEGER NOT NULL REFERENCES rankings(id) ON DELETE CASCADE,
                chosen_id   INTEGER NOT NULL REFERENCES completions(id),
                rejected_id INTEGER NOT NULL REFERENCES completions(id),
                rank_gap    INTEGER NOT NULL
            );
            CREATE INDEX comparisons_ranking ON comparisons(ranking_id);

            -- Every curve: one row per (stage run, metric, step).
            CREATE TABLE metrics (
                stage_run_id INTEGER NOT NULL REFERENCES stage_runs(id),
                name         TEXT NOT NULL,
                step         INTEGER NOT NULL,
                value        REAL,                      -- NULL stands for NaN
                time         REAL NOT NULL,
                PRIMARY KEY (stage_run_id, name, step)
            ) WITHOUT ROWID;

            -- What a stage needs to resume (iteration, RNG state, KL coefficient, optimiser file…).
            CREATE TABLE stage_state (
                stage_run_id INTEGER NOT NULL REFERENCES stage_runs(id),
                key          TEXT NOT NULL,
                value        TEXT NOT NULL,
                PRIMARY KEY (stage_run_id, key)
            ) WITHOUT ROWID;
            """)
}
