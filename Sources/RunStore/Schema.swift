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
    public static let migrations: [Migration] = [version1, version2, version3, version4, version5]

    /// The newest schema this program knows.
    public static var currentVersion: Int { migrations.last!.version }

    /// Written demonstrations (`rlhf label --write`, imports, rejection sampling) and the drafts
    /// the writing screen saves as the labeler types, one per (prompt, annotator).
    static let version3 = Migration(
        version: 3,
        sql: """
            -- One submitted demonstration: the answer a person (or a selection rule) holds up as ideal.
            -- An edit keeps the old row, marked replaced.
            CREATE TABLE demonstrations (
                id                 INTEGER PRIMARY KEY,
                prompt_id          INTEGER NOT NULL REFERENCES prompts(id),
                text               TEXT NOT NULL,       -- the completion, without the prompt template
                annotator          TEXT NOT NULL,
                source             TEXT NOT NULL DEFAULT 'human',   -- human, import, rankings, best-of:N
                from_completion_id INTEGER REFERENCES completions(id), -- the completion it started from
                messages           TEXT,                -- imported conversations: the whole messages list, JSON
                guideline_version  TEXT,
                started_at         REAL NOT NULL,
                submitted_at       REAL NOT NULL,
                replaced_by        INTEGER REFERENCES demonstrations(id),
                origin             TEXT                 -- imported from an rlhf export: the line's provenance, JSON
            );
            CREATE INDEX demonstrations_prompt ON demonstrations(prompt_id, annotator);

            -- What the writing screen has typed but not submitted; survives a crash of the screen.
            CREATE TABLE demonstration_drafts (
                prompt_id          INTEGER NOT NULL REFERENCES prompts(id),
                annotator          TEXT NOT NULL,
                text               TEXT NOT NULL,
                from_completion_id INTEGER REFERENCES completions(id),
                started_at         REAL NOT NULL,
                saved_at           REAL NOT NULL,
                PRIMARY KEY (prompt_id, annotator)
            ) WITHOUT ROWID;
            """)

    /// Blind pairwise judgments of two policies (`rlhf compare --judge human`).
    static let version4 = Migration(
        version: 4,
        sql: """
            -- One verdict by one annotator on one item: an eval prompt with a completion of each model,
            -- both sampled by the compare stage run `stage_run_id`. `first_side` is the side (A or B)
            -- the first model's completion was shown on; `verdict` is the side the annotator preferred,
            -- as shown. An undone or changed verdict is kept, marked replaced.
            CREATE TABLE judgments (
                id                  INTEGER PRIMARY KEY,
                stage_run_id        INTEGER NOT NULL REFERENCES stage_runs(id),
                prompt_id           INTEGER NOT NULL REFERENCES prompts(id),
                model_id            INTEGER NOT NULL REFERENCES models(id),
                other_model_id      INTEGER NOT NULL REFERENCES models(id),
                completion_id       INTEGER NOT NULL REFERENCES completions(id),
                other_completion_id INTEGER NOT NULL REFERENCES completions(id),
                first_side          TEXT NOT NULL CHECK (first_side IN ('A', 'B')),
                verdict             TEXT NOT NULL CHECK (verdict IN ('A', 'B', 'tie', 'skip')),
                annotator           TEXT NOT NULL,
                shown_at            REAL NOT NULL,
                judged_at           REAL NOT NULL,
                replaced_by         INTEGER REFERENCES judgments(id),
                CHECK (model_id <> other_model_id AND completion_id <> other_completion_id)
            );
            CREATE INDEX judgments_models ON judgments(model_id, other_model_id, annotator);
            -- An annotator has at most one current verdict per item.
            CREATE UNIQUE INDEX judgments_current ON judgments(stage_run_id, annotator, completion_id, other_completion_id)
                WHERE replaced_by IS NULL;
            """)

    /// Where a registered model came from when it came from the Hugging Face Hub: JSON with the
    /// repository, the revision asked for and the exact commit.
    static let version5 = Migration(
        version: 5,
        sql: """
            ALTER TABLE models ADD COLUMN origin TEXT;
            """)

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
