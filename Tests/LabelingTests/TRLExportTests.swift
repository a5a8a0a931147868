import Foundation
import TransformerCore
import XCTest

@testable import Labeling
@testable import RunStore

/// The files other tools read, against what those tools make of them. Four prompt layouts (a
/// GPT-2 prompt template; a prompt template on a tokenizer that puts Llama 3's BOS first; a
/// Llama-3-style chat template; a ChatML template) each give a run built straight into the store.
/// Its TRL exports (both forms), prompt export and exported chat template are the fixtures under
/// Fixtures/trl/CASE/; `make_trl_reference.py` ran TRL 1.16's RewardTrainer and DPOTrainer,
/// transformers' apply_chat_template and OpenRLHF 0.11's dataset code on those files once and
/// recorded the token ids in trl_reference.json. Set RLHF_UPDATE_FIXTURES=1 to rewrite the
/// exports (then rerun the script).
final class TRLExportTests: XCTestCase {
    static let fixtures = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/trl")
    static let hf = URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("../TransformerCoreTests/Fixtures/hf")
        .standardizedFileURL

    struct Case {
        var name: String
        var tokenizerFolder: URL
        var annotations: ModelAnnotations
    }

    /// A fixture tokenizer with the tokenizer_config.json of an instruct folder (its BOS and EOS).
    static func instructTokenizer(_ source: String, config: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-trl-tok-\(getpid())-\(source.filter(\.isLetter))")
        try? FileManager.default.removeItem(at: dir)
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            at: hf.appendingPathComponent(source).appendingPathComponent("tokenizer.json"), to: dir.appendingPathComponent("tokenizer.json"))
        try config.write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        return dir
    }

    static func cases() throws -> [Case] {
        let llama = try instructTokenizer("arch/llama-tiny", config: #"{"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>"}"#)
        let qwen = try instructTokenizer("arch/qwen2-tiny", config: #"{"bos_token": null, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"}"#)
        func text(_ u: URL) throws -> String { try String(contentsOf: u, encoding: .utf8) }
        return [
            Case(
                name: "gpt2-template", tokenizerFolder: hf.appendingPathComponent("tiny-gpt2"),
                annotations: ModelAnnotations(promptTemplate: "Q: {prompt}\nA:")),
            Case(
                name: "llama3-template", tokenizerFolder: llama,
                annotations: ModelAnnotations(promptTemplate: "Frage: {prompt}\t→ Antwort:", stopTokenIds: [605, 604])),
            Case(
                name: "llama3-chat", tokenizerFolder: llama,
                annotations: ModelAnnotations(
                    chatTemplate: try text(fixtures.appendingPathComponent("llama3-nodate.jinja")), stopTokenIds: [605, 604])),
            Case(
                name: "qwen2-chatml", tokenizerFolder: qwen,
                annotations: ModelAnnotations(chatTemplate: try text(hf.appendingPathComponent("arch/chatml.jinja")), stopTokenIds: [605])),
        ]
    }

    static let prompts = [
        "Is there an easy way to start running?",
        "Quote 'this' and \"that\", a back\\slash, {{ braces }}, {% tags %} and #} too.",
        "Deux lignes :\nçà et là — 😀",
    ]
    /// Per prompt: completion texts, whether each stopped, and their ranks.
    static let completions: [(String, Bool)] = [("Start slow.", true), ("Run fast, then rest.\nDone.", true), ("Walk", false)]

    /// A run holding the prompts, three completions of each (as the policy would have generated
    /// them: the text's tokens, then the stop token when it stopped), and one ranking per prompt.
    static func buildRun(_ c: Case, tokenizer: Tokenizer) throws -> RunStore {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("rlhf-trl-\(getpid())-\(c.name)-\(UInt32.random(in: 0...UInt32.max))")
        let store = try RunStore(folder: dir, create: true)
        let run = try store.beginStageRun(stage: "generate", config: "{}", seed: nil)
        let m = try store.registerModel(
            role: .policy, path: "checkpoints/none", sha256: "0", config: "{}", promptTemplate: nil, parentId: nil, stageRunId: run)
        _ = try store.addPrompts(prompts.map { NewPrompt(text: $0) }, split: .train, source: nil)
        let stop = c.annotations.stopTokens(tokenizer).first!
        var rows: [NewCompletion] = []
        for p in try store.prompts() {
            for (k, (text, stopped)) in completions.enumerated() {
                // A chat model answers without the leading space a prompt template leaves room for.
                let body = c.annotations.usesChatTemplate() ? text : " " + text + (k == 0 ? "" : " (\(p.id))")
                rows.append(
                    NewCompletion(
                        promptId: p.id, modelId: m.id, stageRunId: run, text: body,
                        tokenIds: tokenizer.encode(body, allowSpecial: false) + (stopped ? [stop] : []),
                        finishReason: stopped ? "eos" : "length", logprobSum: 0, sampling: "{}"))
            }
        }
        try store.addCompletions(rows)
        for item in try store.labelItems() {
            try store.submitRanking(
                NewRanking(
                    promptId: item.promptId, modelId: item.modelId, annotator: "alice", shownOrder: item.completionIds,
                    ranks: item.promptId == 2 ? [2, 1, 3] : [1, 2, 3], status: .ranked, startedAt: 0, submittedAt: 1))
        }
        return store
    }

    /// The files of one case, as rlhf writes them.
    static func exports(_ c: Case) throws -> (files: [String: String], store: RunStore, context: LabelsIO.PromptContext) {
        let tokenizer = try Tokenizer.load(folder: c.tokenizerFolder)
        let store = try buildRun(c, tokenizer: tokenizer)
        let ctx = LabelsIO.PromptContext(run: "fixture-\(c.name)", tokenizer: tokenizer, annotations: c.annotations)
        var files: [String: String] = [:]
        files["labels-trl.jsonl"] = try LabelsIO.export(store: store, format: .trl, context: ctx).text
        files["labels-trl-conversational.jsonl"] = try LabelsIO.export(store: store, format: .trlConversational, context: ctx).text
        files["prompts.jsonl"] = try LabelsIO.exportPrompts(try store.prompts(), run: ctx.run, context: ctx)
        files["chat_template.jinja"] = c.annotations.exportedChatTemplate(tokenizer)
        // The tokenizer files rlhf export writes beside them (for the reference script).
        let tmp = store.folder.appendingPathComponent("tok")
        try tokenizer.save(to: tmp, maxLength: 128)
        for name in ["tokenizer.json", "tokenizer_config.json"] {
            files[name] = try String(contentsOf: tmp.appendingPathComponent(name), encoding: .utf8)
        }
        return (files, store, ctx)
    }

    func testExportsMatchTheFilesTheReferenceToolsRead() throws {
        let update = ProcessInfo.processInfo.environment["RLHF_UPDATE_FIXTURES"] == "1"
        for c in try Self.cases() {
            let (files, _, _) = try Self.exports(c)
            let dir = Self.fixtures.appendingPathComponent(c.name)
            for (name, text) in files.sorted(by: { $0.key < $1.key }) {
                let url = dir.appendingPathComponent(name)
                if update {
                    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
                    try text.write(to: url, atomically: true, encoding: .utf8)
                    continue
                }
                XCTAssertEqual(
                    try String(contentsOf: url, encoding: .utf8), text, "\(c.name)/\(name) differs from the file the reference script read")
            }
        }
    }

    /// What TRL, transformers and OpenRLHF tokenize from the exported files equals what rlhf
    /// generated from and scored, except where Sources/rlhf/rlhf.docc/HandOff.md says otherwise.
    func testReferenceToolsSeeTheIdsRLHFScored() throws {
        let data = try Data(contentsOf: Self.fixtures.appendingPathComponent("trl_reference.json"))
        let ref = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        for c in try Self.cases() {
            let (_, store, ctx) = try Self.exports(c)
            let t = ctx.tokenizer, a = ctx.annotations
            guard let r = ref[c.name] as? [String: Any] else { XCTFail("no reference for \(c.name)"); continue }
            func ids(_ key: String) -> [[Int32]] { ((r[key] as? [[Int]]) ?? []).map { $0.map(Int32.init) } }
            let eos = Int32(r["eos_token_id"] as! Int)
            let prompts = try store.prompts()

            // The exported chat template: apply_chat_template of one user turn gives promptIds,
            // and so do TRL's tokenizer(prompt) and OpenRLHF's "input".
            let promptIds = try prompts.map { try a.promptIds($0.text, tokenizer: t) }
            XCTAssertEqual(ids("chat_template_prompt_ids"), promptIds, c.name)
            XCTAssertEqual(ids("trl_prompt_ids"), promptIds, c.name)
            XCTAssertEqual(ids("openrlhf_input_ids"), promptIds, c.name)
            XCTAssertEqual(ids("openrlhf_chat_prompt_ids"), promptIds, c.name)

            // Preference pairs, in export order.
            let comps = try store.comparisons()
            let texts = try store.completions(ids: comps.flatMap { [$0.chosenId, $0.rejectedId] })
            func scored(_ id: Int64, _ p: Int64) throws -> [Int32] {
                let r = texts[id]!
                return try a.promptIds(store.prompt(id: p)!.text, tokenizer: t) + r.tokenIds
            }
            let rewardChosen = ids("trl_reward_chosen_ids"), rewardRejected = ids("trl_reward_rejected_ids")
            let dpoPrompt = ids("trl_dpo_prompt_ids"), dpoChosen = ids("trl_dpo_chosen_ids")
            let convPrompt = ids("trl_conv_dpo_prompt_ids"), convChosen = ids("trl_conv_reward_chosen_ids")
            XCTAssertEqual(rewardChosen.count, comps.count, c.name)
            for (i, cmp) in comps.enumerated() where i < rewardChosen.count {
                let chosen = texts[cmp.chosenId]!
                // TRL appends the tokenizer's EOS to a completion that was cut at the length limit.
                let appended: (Int64) -> [Int32] = { texts[$0]!.finishReason == "length" ? [eos] : [] }
                let s = try scored(cmp.chosenId, cmp.promptId) + appended(cmp.chosenId)
                XCTAssertEqual(rewardChosen[i], s, "\(c.name) pair \(i): TRL's reward tokenization")
                XCTAssertEqual(rewardRejected[i], try scored(cmp.rejectedId, cmp.promptId) + appended(cmp.rejectedId), "\(c.name) pair \(i)")
                XCTAssertEqual(dpoPrompt[i] + dpoChosen[i], s, "\(c.name) pair \(i): TRL's DPO tokenization")
                let p = try a.promptIds(store.prompt(id: cmp.promptId)!.text, tokenizer: t)
                XCTAssertEqual(convPrompt[i], p, "\(c.name) pair \(i): the conversational prompt")
                // Conversational: the chat template writes the end of the assistant turn. The
                // template rlhf writes ends it with the stop token; a model's own may add more
                // (ChatML's newline after <|im_end|>).
                let body = chosen.finishReason == "eos" ? Array(chosen.tokenIds.dropLast()) : chosen.tokenIds
                let stop = a.stopTokens(t).first!
                if a.usesChatTemplate() {
                    XCTAssertTrue(
                        convChosen[i].starts(with: p + body + [stop]),
                        "\(c.name) pair \(i): \(convChosen[i]) vs \(p + body + [stop])")
                } else {
                    XCTAssertEqual(convChosen[i], p + body + [stop], "\(c.name) pair \(i): the conversational pair")
                }
                // OpenRLHF's reward dataset adds no special tokens: the standard file lacks the BOS
                // a Llama 3 tokenizer puts first; read through the chat template, it is exact.
                let orlhf = ids("openrlhf_reward_chosen_ids")[i]
                if chosen.finishReason == "eos" {
                    XCTAssertEqual(orlhf, Array(s.dropFirst(t.prefixIds.count)), "\(c.name) pair \(i): OpenRLHF standard")
                    XCTAssertEqual(ids("openrlhf_conv_reward_chosen_ids")[i], s, "\(c.name) pair \(i): OpenRLHF conversational")
                }
            }
        }
    }

    func testARoundTripThroughImportGivesTheSameFile() throws {
        for c in try Self.cases() {
            let (files, _, ctx) = try Self.exports(c)
            for format in [LabelsIO.Format.trl, .trlConversational] {
                let first = files[format == .trl ? "labels-trl.jsonl" : "labels-trl-conversational.jsonl"]!
                let pairs = try LabelsIO.parseTRL(Data(first.utf8), name: "x")
                XCTAssertEqual(pairs.map(\.prompt), [0, 0, 0, 1, 1, 1, 2, 2, 2].map { Self.prompts[$0] }, "the raw prompts come back")
                XCTAssertTrue(pairs.allSatisfy { $0.annotator == "alice" && $0.origin != nil })
                XCTAssertFalse(pairs.contains { $0.chosen.contains("<|") || $0.rejected.contains("<|") }, "the stop text is taken off")

                let dir = FileManager.default.temporaryDirectory.appendingPathComponent(
                    "rlhf-trl-rt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
                let other = try RunStore(folder: dir, create: true)
                let run = try other.beginStageRun(stage: "label", config: "{}", seed: nil)
                let r = try other.importPairs(pairs, annotator: "import", stageRunId: run, source: "x")
                XCTAssertEqual(r.newPrompts, 3)
                XCTAssertEqual(Set(try other.rankings().map(\.ranking.annotator)), ["alice"])
                // How each completion ended survives, so the new run scores them as the first did.
                let finishes = try other.completions(ids: try other.comparisons().flatMap { [$0.chosenId, $0.rejectedId] }).values.map(\.finishReason)
                XCTAssertTrue(finishes.contains("length") && finishes.contains("eos"))
                var otherCtx = ctx
                otherCtx.run = "somewhere-else"
                let again = try LabelsIO.export(store: other, format: format, context: otherCtx).text
                XCTAssertEqual(again, first, "\(c.name) \(format): export, import, export")
            }
        }
    }

    func testTheWrittenTemplateRendersAsRLHFLaysPromptsOut() throws {
        let tok = try Tokenizer.load(folder: Self.hf.appendingPathComponent("arch/llama-tiny"))
        for template in [nil, "Q: {prompt}\nA:", "{prompt}{prompt}", "'\\ \u{1}\t{{x}} {% if %} #} {prompt} é😀\r\n"] {
            let a = ModelAnnotations(promptTemplate: template, stopTokenIds: [605])
            let source = a.exportedChatTemplate(tok)
            let ct = try ChatTemplate(source)
            for p in Self.prompts + ["", "{prompt}"] {
                let rendered = try ct.render(
                    messages: [ChatMessage(role: "user", content: p)], addGenerationPrompt: true, specialTokens: tok.namedSpecialTokens)
                XCTAssertEqual(tok.encode(rendered), try a.promptIds(p, tokenizer: tok), "\(String(describing: template)) \(p)")
                let without = try ct.render(
                    messages: [ChatMessage(role: "user", content: p)], addGenerationPrompt: false, specialTokens: tok.namedSpecialTokens)
                XCTAssertEqual(without, rendered, "the generation prompt adds nothing")
                let pair = try ct.render(
                    messages: [ChatMessage(role: "user", content: p), ChatMessage(role: "assistant", content: " ok")], addGenerationPrompt: false)
                XCTAssertEqual(pair, rendered + " ok<|eot_id|>")
            }
            XCTAssertThrowsError(
                try ct.render(
                    messages: [ChatMessage(role: "system", content: "s"), ChatMessage(role: "user", content: "u")], addGenerationPrompt: true)
            ) {
                XCTAssertTrue("\($0)".contains("single user prompts"), "\($0)")
            }
        }
        // A run that prompts through the model's own chat template exports that template as it is.
        let own = ModelAnnotations(chatTemplate: "{{ messages[0]['content'] }}")
        XCTAssertEqual(own.exportedChatTemplate(tok), "{{ messages[0]['content'] }}")
    }

    func testSpecialTokenTextInACompletionIsCountedAsRetokenized() throws {
        let c = try Self.cases()[0]
        let tok = try Tokenizer.load(folder: c.tokenizerFolder)
        let store = try Self.buildRun(c, tokenizer: tok)
        let ctx = LabelsIO.PromptContext(run: "r", tokenizer: tok, annotations: c.annotations)
        XCTAssertEqual(try LabelsIO.export(store: store, format: .trl, context: ctx).retokenized, 0)
        XCTAssertEqual(try LabelsIO.export(store: store, format: .trl, context: ctx).cutAtLength, 6)
        // Text that reads as a special token in transformers but was generated as plain bytes.
        let run = try store.beginStageRun(stage: "generate", config: "{}", seed: nil)
        let text = " see <|endoftext|> here"
        try store.addCompletions([
            NewCompletion(
                promptId: 1, modelId: 1, stageRunId: run, text: text, tokenIds: tok.encode(text, allowSpecial: false),
                finishReason: "length", logprobSum: 0, sampling: "{}"),
            NewCompletion(
                promptId: 1, modelId: 1, stageRunId: run, text: " plain", tokenIds: tok.encode(" plain", allowSpecial: false),
                finishReason: "length", logprobSum: 0, sampling: "{}"),
        ])
        let ids = try store.completions(promptId: 1).suffix(2).map(\.id)
        try store.submitRanking(
            NewRanking(promptId: 1, modelId: 1, annotator: "bob", shownOrder: ids, ranks: [1, 2], status: .ranked, startedAt: 0, submittedAt: 1))
        XCTAssertEqual(try LabelsIO.export(store: store, format: .trl, context: ctx).retokenized, 1)
    }

    func testMalformedConversationalAndProvenanceLinesAreRefused() {
        let ok =
            #"{"prompt":[{"role":"user","content":"p"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}"#
        XCTAssertEqual(try LabelsIO.parseTRL(Data(ok.utf8), name: "x").map(\.chosen), ["a"])
        let bad: [(String, String)] = [
            (
                #"{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"p"}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}"#,
                "exactly one message"
            ),
            (
                #"{"prompt":[{"role":"user","content":"p"}],"chosen":[{"role":"user","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}"#,
                "role \"assistant\""
            ),
            (
                #"{"prompt":[{"role":"user","content":[{"type":"text","text":"p"}]}],"chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}"#,
                "string content"
            ),
            (#"{"prompt":"p","chosen":[{"role":"assistant","content":"a"}],"rejected":[{"role":"assistant","content":"b"}]}"#, "mixes"),
            (#"{"prompt":"p","chosen":"a","rejected":"b","rlhf":{"origin":{"run":"r"}}}"#, "x:1: \"rlhf\" is not"),
            (
                #"{"prompt":"p","chosen":"a","rejected":"b","rlhf":{"origin":{"run":"r","prompt":"p","prompt_id":1,"ranking_id":1,"annotator":"a","chosen":{"completion_id":1,"stage_run_id":1,"finish":"stop"},"rejected":{"completion_id":2,"stage_run_id":1,"finish":"eos"}}}}"#,
                "eos or length"
            ),
        ]
        for (text, needle) in bad {
            XCTAssertThrowsError(try LabelsIO.parseTRL(Data(text.utf8), name: "x")) { e in XCTAssertTrue("\(e)".contains(needle), "\(e)") }
        }
    }
}
