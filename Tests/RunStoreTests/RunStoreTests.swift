import Foundation
import XCTest

@testable import RunStore

func tempRun(_ name: String = #function) -> URL {
    let url = FileManager.default.temporaryDirectory
        .appendingPathComponent("rlhf-store-\(getpid())-\(name.filter { $0.isLetter })-\(UInt32.random(in: 0...UInt32.max))")
    try! FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    return url
}

final class RunStoreTests: XCTestCase {
    func testSchemaCreation() throws {
        let dir = tempRun()
        let store = try RunStore(folder: dir, create: true)
        XCTAssertEqual(store.schemaVersion, Schema.currentVersion)
        XCTAssertEqual(try store.meta("schema_version"), String(Schema.currentVersion))
        XCTAssertEqual(try store.meta("program_version"), RunStore.programVersion)
        let tables = Set(try store.db.query("SELECT name FROM sqlite_master WHERE type = 'table'") { $0.text(0) })
        for t in ["meta", "models", "stage_runs", "prompts", "completions", "rankings", "comparisons", "metrics", "stage_state"] {
            XCTAssertTrue(tables.contains(t), t)
        }
        XCTAssertEqual(try store.db.scalarText("PRAGMA journal_mode"), "wal")
        XCTAssertEqual(try store.db.scalarInt("PRAGMA foreign_keys"), 1)
        // Reopening a current database changes nothing.
        let again = try RunStore(folder: dir)
        XCTAssertEqual(again.schemaVersion, Schema.currentVersion)
    }

    func testMissingRunSaysHowToCreateOne() {
        XCTAssertThrowsError(try RunStore(folder: tempRun().appendingPathComponent("nope"))) { e in
            XCTAssertTrue("\(e)".contains("rlhf init"), "\(e)")
        }
    }

    func testMigrationFromAHandMadeOlderVersion() throws {
        // A version-1 database made by hand, with data in it.
        let dir = tempRun()
        let path = dir.appendingPathComponent(RunStore.databaseName).path
        do {
            let c = try Connection(path: path, create: true)
            try c.execute(Schema.version1.sql)
            try c.execute("PRAGMA user_version = 1")
            try c.run("INSERT INTO prompts (text, split, created_at) VALUES ('kept across the upgrade', 'train', 1)")
            try c.run("INSERT INTO models (role, path, sha256, config, created_at) VALUES ('base', 'checkpoints/base', 'ab', '{}', 1)")
        }
        // A later program adds a column and a table.
        let next = Schema.currentVersion + 1
        let v2 = Migration(
            version: next,
            sql: """
                ALTER TABLE prompts ADD COLUMN language TEXT NOT NULL DEFAULT 'en';
                CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);
                """)
        let store = try RunStore(folder: dir, migrations: Schema.migrations + [v2])
        XCTAssertEqual(store.schemaVersion, next)
        XCTAssertEqual(try store.db.scalarInt("PRAGMA user_version"), Int64(next))
        XCTAssertEqual(try store.meta("schema_version"), String(next))
        XCTAssertEqual(try store.prompts().map(\.text), ["kept across the upgrade"])
        // Version 2's base_id: a version-1 checkpoint is full weights.
        XCTAssertEqual(try store.models().map(\.path), ["checkpoints/base"])
        XCTAssertNil(try store.models()[0].baseId)
        XCTAssertEqual(try store.db.scalarText("SELECT language FROM prompts"), "en")
        XCTAssertEqual(try store.db.scalarInt("SELECT count(*) FROM notes"), 0)
        // The program that does not know the last version now refuses it.
        XCTAssertThrowsError(try RunStore(folder: dir)) { e in
            XCTAssertTrue("\(e)".contains("newer"), "\(e)")
        }
    }

    func testAFailedMigrationLeavesTheOldVersion() throws {
        let dir = tempRun()
        _ = try RunStore(folder: dir, create: true)
        let bad = Migration(version: Schema.currentVersion + 1, sql: "CREATE TABLE fine (x); CREATE TABLE prompts (oops);")
        XCTAssertThrowsError(try RunStore(folder: dir, migrations: Schema.migrations + [bad]))
        let store = try RunStore(folder: dir)
        XCTAssertEqual(store.schemaVersion, Schema.currentVersion)
        XCTAssertEqual(try store.db.scalarInt("SELECT count(*) FROM sqlite_master WHERE name = 'fine'"), 0)
    }

    func testNewerVersionIsRefused() throws {
        let dir = tempRun()
        do {
            let s = try RunStore(folder: dir, create: true)
            try s.db.execute("PRAGMA user_version = 99")
        }
        XCTAssertThrowsError(try RunStore(folder: dir)) { e in
            let m = "\(e)"
            XCTAssertTrue(m.contains("schema version 99") && m.contains("newer") && m.contains("upgrade rlhf"), m)
        }
    }

    func testForeignFilesAreRefused() throws {
        let dir = tempRun()
        try Data("this is not a database, just text that is long enough to look like a header".utf8)
            .write(to: dir.appendingPathComponent(RunStore.databaseName))
        XCTAssertThrowsError(try RunStore(folder: dir)) { e in XCTAssertTrue("\(e)".contains("not an SQLite database"), "\(e)") }
        let other = tempRun()
        do {
            let c = try Connection(path: other.appendingPathComponent(RunStore.databaseName).path, create: true)
            try c.execute("CREATE TABLE unrelated (x)")
        }
        XCTAssertThrowsError(try RunStore(folder: other)) { e in XCTAssertTrue("\(e)".contains("not an rlhf run"), "\(e)") }
    }

    func testPromptsDeduplicateAndKeepMetadata() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        let r1 = try store.addPrompts(
            [NewPrompt(text: "a", metadata: "{\"topic\":\"x\"}"), NewPrompt(text: "b"), NewPrompt(text: "a")], split: .train, source: "f")
        XCTAssertEqual(r1.imported, 2); XCTAssertEqual(r1.skipped, 1)
        let r2 = try store.addPrompts([NewPrompt(text: "b"), NewPrompt(text: "c")], split: .eval, source: nil)
        XCTAssertEqual(r2.imported, 1); XCTAssertEqual(r2.skipped, 1)
        XCTAssertEqual(try store.prompts(split: .train).map(\.text), ["a", "b"])
        XCTAssertEqual(try store.prompts(split: .eval).map(\.text), ["c"])
        XCTAssertEqual(try store.prompts(split: .train)[0].metadata, "{\"topic\":\"x\"}")
        XCTAssertEqual(try store.counts().promptsBySplit, ["train": 2, "eval": 1])
    }

    func testCompletionsRoundTrip() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        let run = try store.beginStageRun(stage: "generate", config: "{}", seed: 3)
        let m = try store.registerModel(
            role: .policy, path: "checkpoints/p", sha256: "00", config: "{}", promptTemplate: "Q: {prompt}\nA:", parentId: nil, stageRunId: run)
        _ = try store.addPrompts([NewPrompt(text: "p")], split: .train, source: nil)
        let pid = try store.prompts()[0].id
        let ids: [Int32] = [0, 1, -1, Int32.max, Int32.min, 50256]
        try store.addCompletions([
            NewCompletion(
                promptId: pid, modelId: m.id, stageRunId: run, text: "héllo\u{1B}[31m", tokenIds: ids,
                finishReason: "eos", logprobSum: -3.25, sampling: "{\"temperature\":0.7}")
        ])
        let back = try store.completions(promptId: pid)
        XCTAssertEqual(back.count, 1)
        XCTAssertEqual(back[0].tokenIds, ids)
        XCTAssertEqual(back[0].text, "héllo\u{1B}[31m")
        XCTAssertEqual(back[0].finishReason, "eos")
        XCTAssertEqual(back[0].logprobSum, -3.25)
        XCTAssertEqual(try store.completionCounts(modelId: m.id), [pid: 1])
        XCTAssertEqual(try store.latestModel(role: .policy)?.promptTemplate, "Q: {prompt}\nA:")
        // A completion must point at a real prompt (foreign keys are on).
        XCTAssertThrowsError(
            try store.addCompletions([
                NewCompletion(
                    promptId: 999, modelId: m.id, stageRunId: run, text: "", tokenIds: [],
                    finishReason: "eos", logprobSum: 0, sampling: "{}")
            ]))
        XCTAssertThrowsError(
            try store.addCompletions([
                NewCompletion(
                    promptId: pid, modelId: m.id, stageRunId: run, text: "", tokenIds: [],
                    finishReason: "stop", logprobSum: 0, sampling: "{}")
            ]))
        XCTAssertEqual(try store.completions(promptId: pid).count, 1, "a failed batch adds nothing")
    }

    func testMetricsKeepNaNAndReplaceASteps() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        let run = try store.beginStageRun(stage: "ppo", config: "{}", seed: nil)
        try store.logMetrics(stageRunId: run, step: 1, [("objective/kl", 0.5), ("loss/value", .nan), ("x", .infinity)])
        try store.logMetrics(stageRunId: run, step: 1, [("objective/kl", 0.25)])
        try store.logMetrics(stageRunId: run, step: 2, [("objective/kl", 0.75)])
        let kl = try store.metrics(stageRunId: run, names: ["objective/kl"])
        XCTAssertEqual(kl.map(\.value), [0.25, 0.75])
        XCTAssertTrue(try store.metrics(names: ["loss/value"])[0].value.isNaN)
        XCTAssertEqual(try store.metrics(names: ["x"])[0].value, .infinity)
        XCTAssertEqual(try store.metrics(stageRunId: run, names: ["objective/kl"], afterStep: 1).map(\.step), [2])
        XCTAssertEqual(try store.latestMetric(stage: "ppo", name: "objective/kl")?.value, 0.75)
    }

    func testCheckpointVerification() throws {
        let dir = tempRun()
        let store = try RunStore(folder: dir, create: true)
        let ck = dir.appendingPathComponent("checkpoints/p")
        try FileManager.default.createDirectory(at: ck, withIntermediateDirectories: true)
        try Data("weights".utf8).write(to: ck.appendingPathComponent("model.safetensors"))
        let fakeHash: (URL) throws -> String = { url in String((try Data(contentsOf: url)).count) }
        let m = try store.registerModel(
            role: .policy, path: "checkpoints/p", sha256: "7", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        XCTAssertEqual(try store.verifiedFolder(m, sha256: fakeHash).standardizedFileURL.path, ck.standardizedFileURL.path)
        try Data("weights, changed".utf8).write(to: ck.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try store.verifiedFolder(m, sha256: fakeHash)) { e in
            XCTAssertTrue("\(e)".contains("has changed since it was registered"), "\(e)")
        }
        try FileManager.default.removeItem(at: ck.appendingPathComponent("model.safetensors"))
        XCTAssertThrowsError(try store.verifiedFolder(m, sha256: fakeHash)) { e in XCTAssertTrue("\(e)".contains("is missing"), "\(e)") }
    }

    /// LoRA adapters registered over a base: the chain of verified folders, base first; each
    /// link's own file fingerprinted; a changed base or a missing link refused.
    func testAdapterChains() throws {
        let dir = tempRun()
        let store = try RunStore(folder: dir, create: true)
        func folder(_ name: String, _ file: String, _ body: String) throws {
            let ck = dir.appendingPathComponent("checkpoints/\(name)")
            try FileManager.default.createDirectory(at: ck, withIntermediateDirectories: true)
            try Data(body.utf8).write(to: ck.appendingPathComponent(file))
        }
        let fakeHash: (URL) throws -> String = { url in String((try Data(contentsOf: url)).count) }
        try folder("base", "model.safetensors", "weights")
        try folder("lora", "adapter_model.safetensors", "adapters")
        try folder("lora2", "adapter_model.safetensors", "more adapters")
        let base = try store.registerModel(
            role: .base, path: "checkpoints/base", sha256: "7", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        let a = try store.registerModel(
            role: .policy, path: "checkpoints/lora", sha256: "8", config: "{}", promptTemplate: nil, parentId: base.id,
            stageRunId: nil, baseId: base.id)
        let b = try store.registerModel(
            role: .policy, path: "checkpoints/lora2", sha256: "13", config: "{}", promptTemplate: nil, parentId: a.id,
            stageRunId: nil, baseId: a.id)
        XCTAssertEqual(a.baseId, base.id)
        XCTAssertEqual(a.weightsFile, "adapter_model.safetensors")
        XCTAssertEqual(try store.verifiedChain(b, sha256: fakeHash).map(\.lastPathComponent), ["base", "lora", "lora2"])
        XCTAssertEqual(try store.verifiedChain(base, sha256: fakeHash).map(\.lastPathComponent), ["base"])
        XCTAssertThrowsError(
            try store.registerModel(
                role: .policy, path: "x", sha256: "1", config: "{}", promptTemplate: nil, parentId: nil,
                stageRunId: nil, baseId: 99)
        ) { e in XCTAssertTrue("\(e)".contains("#99"), "\(e)") }
        try folder("base", "model.safetensors", "weights, changed")
        XCTAssertThrowsError(try store.verifiedChain(b, sha256: fakeHash)) { e in XCTAssertTrue("\(e)".contains("base model #\(base.id)"), "\(e)") }
    }

    func testCheckpointPathsLeadingOutsideTheRunAreRefused() throws {
        let dir = tempRun(), elsewhere = tempRun("elsewhere")
        defer { try? FileManager.default.removeItem(at: dir); try? FileManager.default.removeItem(at: elsewhere) }
        let store = try RunStore(folder: dir, create: true)
        try Data("weights".utf8).write(to: elsewhere.appendingPathComponent("model.safetensors"))
        let fakeHash: (URL) throws -> String = { url in String((try Data(contentsOf: url)).count) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("checkpoints"), withIntermediateDirectories: true)
        // A folder that is a symbolic link to elsewhere, and a folder whose weights are one.
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("checkpoints/linked"), withDestinationURL: elsewhere)
        let inner = dir.appendingPathComponent("checkpoints/inner")
        try FileManager.default.createDirectory(at: inner, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            at: inner.appendingPathComponent("model.safetensors"),
            withDestinationURL: elsewhere.appendingPathComponent("model.safetensors"))
        for path in [
            elsewhere.path, "../" + elsewhere.lastPathComponent, "checkpoints/../../" + elsewhere.lastPathComponent, "checkpoints/linked",
            "checkpoints/inner", "",
        ] {
            let m = try store.registerModel(role: .policy, path: path, sha256: "7", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
            XCTAssertThrowsError(try store.verifiedFolder(m, sha256: fakeHash), path) { e in
                XCTAssertTrue("\(e)".contains("outside the run folder"), "\(path): \(e)")
            }
        }
        // A link that stays inside the run is fine.
        let real = dir.appendingPathComponent("checkpoints/real")
        try FileManager.default.createDirectory(at: real, withIntermediateDirectories: true)
        try Data("weights".utf8).write(to: real.appendingPathComponent("model.safetensors"))
        try FileManager.default.createSymbolicLink(at: dir.appendingPathComponent("checkpoints/alias"), withDestinationURL: real)
        let ok = try store.registerModel(
            role: .policy, path: "checkpoints/alias", sha256: "7", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: nil)
        XCTAssertNoThrow(try store.verifiedFolder(ok, sha256: fakeHash))
    }

    func testRunsOfDeadProcessesAreMarkedInterrupted() throws {
        let store = try RunStore(folder: tempRun(), create: true)
        let p = Process()
        p.executableURL = URL(fileURLWithPath: "/bin/true")
        try p.run(); p.waitUntilExit()
        let dead = try store.beginStageRun(stage: "generate", config: "{}", seed: nil)
        let alive = try store.beginStageRun(stage: "generate", config: "{}", seed: nil) // this process
        try store.db.run("UPDATE stage_runs SET pid = ? WHERE id = ?", [.int(Int64(p.processIdentifier)), .int(dead)])
        XCTAssertEqual(try store.markInterruptedRuns(), 1)
        let runs = Dictionary(uniqueKeysWithValues: try store.stageRuns().map { ($0.id, $0.status) })
        XCTAssertEqual(runs[dead], .interrupted)
        XCTAssertEqual(runs[alive], .running)
    }

    func testTwoConnectionsWriteAtOnce() throws {
        let dir = tempRun()
        let setup = try RunStore(folder: dir, create: true)
        let runA = try setup.beginStageRun(stage: "ppo", config: "{}", seed: nil)
        let runB = try setup.beginStageRun(stage: "label", config: "{}", seed: nil)
        let errors = NSLock()
        var failures: [String] = []
        DispatchQueue.concurrentPerform(iterations: 2) { w in
            do {
                let store = try RunStore(folder: dir) // its own connection, as another process would have
                for step in 0..<150 {
                    if w == 0 {
                        try store.logMetrics(stageRunId: runA, step: step, [("a", Double(step)), ("b", 1)])
                    } else {
                        _ = try store.addPrompts([NewPrompt(text: "prompt \(step)")], split: .train, source: nil)
                        _ = try store.counts()
                    }
                }
            } catch {
                errors.lock(); failures.append("\(error)"); errors.unlock()
            }
        }
        XCTAssertEqual(failures, [])
        XCTAssertEqual(try setup.metrics(stageRunId: runA).count, 300)
        XCTAssertEqual(try setup.prompts().count, 150)
        _ = runB
    }
}

final class PromptFileTests: XCTestCase {
    func parse(_ s: String, _ f: PromptFile.Format = .jsonl) throws -> [NewPrompt] { try PromptFile.parse(Data(s.utf8), format: f, name: "f.jsonl") }

    func testJSONLAndText() throws {
        let p = try parse("{\"prompt\":\"a\",\"topic\":\"t\",\"n\":2}\n\n  \n{\"prompt\":\"b\\nc\"}\r\n")
        XCTAssertEqual(p, [NewPrompt(text: "a", metadata: "{\"n\":2,\"topic\":\"t\"}"), NewPrompt(text: "b\nc")])
        XCTAssertEqual(try parse("\u{FEFF}one\r\ntwo\n\nthree", .text).map(\.text), ["one", "two", "three"])
    }

    /// TRL's conversational prompt-only form: one user message, content a string or text parts.
    func testConversationalPrompts() throws {
        let p = try parse(
            """
            {"prompt": [{"role": "user", "content": "Name a colour."}], "id": 7}
            {"prompt": [{"role": "user", "content": [{"type": "text", "text": "Two "}, {"type": "text", "text": "parts"}]}]}
            """)
        XCTAssertEqual(p, [NewPrompt(text: "Name a colour.", metadata: "{\"id\":7}"), NewPrompt(text: "Two parts")])
    }

    /// --key: the prompt under another key (GSM8K's question); errors name that key.
    func testAnotherKey() throws {
        let data = Data("{\"question\": \"2+2?\", \"answer\": \"4\"}\n".utf8)
        XCTAssertEqual(
            try PromptFile.parse(data, format: .jsonl, name: "g.jsonl", key: "question"),
            [NewPrompt(text: "2+2?", metadata: "{\"answer\":\"4\"}")])
        XCTAssertThrowsError(try PromptFile.parse(data, format: .jsonl, name: "g.jsonl")) { e in
            XCTAssertTrue("\(e)".contains("g.jsonl:1: no \"prompt\" key (the line has \"answer\", \"question\"; --key names another)"), "\(e)")
        }
        XCTAssertThrowsError(try PromptFile.parse(Data("{\"question\": \"\"}\n".utf8), format: .jsonl, name: "g.jsonl", key: "question")) { e in
            XCTAssertTrue("\(e)".contains("g.jsonl:1: \"question\" is empty"), "\(e)")
        }
    }

    func testErrorsNameTheLine() {
        let cases: [(String, PromptFile.Format, String)] = [
            ("{\"prompt\":\"a\"}\n{\"prompt\": \"b\"\n", .jsonl, "f.jsonl:2: invalid JSON"),
            ("{\"prompt\":\"a\"}\n\n{\"text\":\"b\"}\n", .jsonl, "f.jsonl:3: no \"prompt\" key"),
            ("{\"prompt\":3}\n", .jsonl, "f.jsonl:1: \"prompt\" must be a string"),
            (
                "{\"prompt\":[{\"role\":\"system\",\"content\":\"s\"},{\"role\":\"user\",\"content\":\"u\"}]}\n", .jsonl,
                "f.jsonl:1: \"prompt\" holds a system message"
            ),
            (
                "{\"prompt\":\"a\"}\n{\"prompt\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}\n", .jsonl,
                "f.jsonl:2: \"prompt\" holds 2 messages"
            ),
            ("{\"prompt\":[{\"role\":\"assistant\",\"content\":\"a\"}]}\n", .jsonl, "must have role \"user\""),
            ("{\"prompt\":[{\"role\":\"user\",\"content\":[{\"type\":\"image\"}]}]}\n", .jsonl, "images and other parts are not supported"),
            ("{\"prompt\":[{\"role\":\"user\",\"content\":\" \"}]}\n", .jsonl, "\"prompt\" is empty"),
            ("{\"prompt\":\"a\",}\n", .jsonl, "f.jsonl:1: invalid JSON"),
            ("{\"prompt\":\"a\",\"tags\":[1,2,]}\n", .jsonl, "f.jsonl:1: invalid JSON"),
            ("{\"prompt\":\"  \"}\n", .jsonl, "f.jsonl:1: \"prompt\" is empty"),
            ("[\"prompt\"]\n", .jsonl, "f.jsonl:1: expected a JSON object"),
            ("", .jsonl, "no prompts"),
            ("\n \n", .text, "no prompts"),
        ]
        for (text, f, needle) in cases {
            XCTAssertThrowsError(try parse(text, f), needle) { e in XCTAssertTrue("\(e)".contains(needle), "\(e) lacks \(needle)") }
        }
        XCTAssertThrowsError(try PromptFile.parse(Data([0x6F, 0x6B, 0x0A, 0x62, 0xFF, 0x0A]), format: .text, name: "f.txt")) { e in
            XCTAssertTrue("\(e)".contains("f.txt:2: not valid UTF-8"), "\(e)")
        }
    }

    func testStrictJSONAllowsCommasInStrings() throws {
        XCTAssertEqual(try parse("{\"prompt\":\"a,}\\\",]\"}\n").map(\.text), ["a,}\",]"])
        XCTAssertFalse(StrictJSON.hasTrailingComma("{\"a\":[1,2],\"b\":{}}"))
        XCTAssertTrue(StrictJSON.hasTrailingComma("[1 , \n ]"))
    }

    func testFormatDetection() throws {
        let dir = tempRun()
        let a = dir.appendingPathComponent("prompts.data")
        try Data("{\"prompt\":\"x\"}\n".utf8).write(to: a)
        XCTAssertEqual(try PromptFile.read(a).map(\.text), ["x"])
        let b = dir.appendingPathComponent("plain.data")
        try Data("{ not json but text\n".utf8).write(to: b)
        XCTAssertThrowsError(try PromptFile.read(b))
        XCTAssertEqual(try PromptFile.read(b, format: .text).map(\.text), ["{ not json but text"])
        let c = dir.appendingPathComponent("p.txt")
        try Data("{\"prompt\":\"x\"}\n".utf8).write(to: c)
        XCTAssertEqual(try PromptFile.read(c).map(\.text), ["{\"prompt\":\"x\"}"])
    }
}
