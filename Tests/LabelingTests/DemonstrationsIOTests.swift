import Foundation
import TransformerCore
import XCTest

@testable import Labeling
@testable import RunStore

/// Demonstrations out as TRL's SFT datasets and back in, on the four prompt layouts of
/// `TRLExportTests` (a GPT-2 prompt template, a prompt template on a Llama 3 tokenizer, a Llama 3
/// chat template, a ChatML template).
final class DemonstrationsIOTests: XCTestCase {
    /// The TRL case's run, with one written demonstration per prompt (the second one corrected
    /// from a completion).
    func runWithDemonstrations(_ c: TRLExportTests.Case) throws -> (RunStore, LabelsIO.PromptContext) {
        let (_, store, ctx) = try TRLExportTests.exports(c)
        for (i, p) in try store.prompts().enumerated() {
            let from = i == 1 ? try store.completions(promptId: p.id).first?.id : nil
            try store.submitDemonstration(
                NewDemonstration(
                    promptId: p.id, text: "Answer \(i): «ok» \"quoted\"\nsecond line", annotator: "ana", fromCompletionId: from,
                    guidelineVersion: "0123456789abcdef", startedAt: 100.5, submittedAt: 160.25))
        }
        return (store, ctx)
    }

    func lines(_ text: String) throws -> [[String: Any]] {
        try text.split(separator: "\n").map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
    }

    /// The prompt of each `sft` line is the prompt of the `trl` pair export for the same prompt,
    /// and the completion is the answer followed by the stop token's text: transformers'
    /// tokenizer(prompt + completion) gives the prompt's ids, then the answer's, then the stop token.
    func testSFTLinesAreLaidOutAsThePairExport() throws {
        for c in try TRLExportTests.cases() {
            let (store, ctx) = try runWithDemonstrations(c)
            let pairs = try lines(try LabelsIO.export(store: store, format: .trl, context: ctx).text)
            var pairPrompt: [String: String] = [:]
            for p in pairs { pairPrompt[((p["rlhf"] as! [String: Any])["origin"] as! [String: Any])["prompt"] as! String] = p["prompt"] as? String }
            let export = try LabelsIO.export(store: store, format: .sft, context: ctx)
            XCTAssertEqual(export.lines, 3)
            XCTAssertEqual(export.retokenized, 0, c.name)
            let stop = ctx.annotations.stopText(ctx.tokenizer)!
            for (line, d) in zip(try lines(export.text), try store.demonstrations()) {
                let meta = line["rlhf"] as! [String: Any]
                let origin = meta["origin"] as! [String: Any]
                let raw = origin["prompt"] as! String
                XCTAssertEqual(line["prompt"] as? String, pairPrompt[raw], "\(c.name): the prompt as the pair export lays it out")
                XCTAssertEqual(line["completion"] as? String, d.demonstration.text + stop)
                XCTAssertEqual(meta["format"] as? String, "sft")
                XCTAssertEqual(meta["stop"] as? [String], [stop])
                XCTAssertEqual(origin["demonstration_id"] as? Int, Int(d.id))
                XCTAssertEqual(origin["annotator"] as? String, "ana")
                XCTAssertEqual(origin["source"] as? String, "human")
                XCTAssertEqual(origin["guideline_version"] as? String, "0123456789abcdef")
                XCTAssertEqual((origin["from_completion_id"] as? Int).map(Int64.init), d.demonstration.fromCompletionId)
                let t = ctx.tokenizer
                XCTAssertEqual(
                    t.encodeWithSpecialTokens((line["prompt"] as! String) + (line["completion"] as! String)),
                    try ctx.annotations.promptIds(raw, tokenizer: t) + t.encode(d.demonstration.text, allowSpecial: false)
                        + [ctx.annotations.stopTokens(t).first!], c.name)
            }
            let conv = try lines(try LabelsIO.export(store: store, format: .sftConversational, context: ctx).text)
            XCTAssertEqual(
                conv[0]["messages"] as? [[String: String]],
                [
                    ["role": "user", "content": TRLExportTests.prompts[0]],
                    ["role": "assistant", "content": "Answer 0: «ok» \"quoted\"\nsecond line"],
                ])
        }
    }

    /// Export, import into a fresh run, export again: the same bytes, in both forms. The answers
    /// come back without the stop text, with their annotator, guideline version and origin.
    func testARoundTripThroughImportGivesTheSameFile() throws {
        for c in try TRLExportTests.cases() {
            let (store, ctx) = try runWithDemonstrations(c)
            for format in [LabelsIO.Format.sft, .sftConversational] {
                let first = try LabelsIO.export(store: store, format: format, context: ctx).text
                let items = try LabelsIO.parseDemonstrations(Data(first.utf8), name: "x")
                XCTAssertEqual(items.map(\.prompt), TRLExportTests.prompts, "the raw prompts come back")
                XCTAssertEqual(items.map(\.text), try store.demonstrations().map(\.demonstration.text), "the stop text is taken off")
                XCTAssertTrue(items.allSatisfy { $0.annotator == "ana" && $0.guidelineVersion == "0123456789abcdef" && $0.origin != nil })

                let other = try RunStore(
                    folder: FileManager.default.temporaryDirectory.appendingPathComponent(
                        "rlhf-sft-rt-\(getpid())-\(UInt32.random(in: 0...UInt32.max))"), create: true)
                let r = try other.importDemonstrations(items, annotator: "import", source: "x")
                XCTAssertEqual(r.newPrompts, 3)
                XCTAssertEqual(try other.demonstrations().map(\.demonstration.source), ["import", "import", "import"])
                var otherCtx = ctx
                otherCtx.run = "somewhere-else"
                XCTAssertEqual(try LabelsIO.export(store: other, format: format, context: otherCtx).text, first, "\(c.name) \(format)")
            }
        }
    }

    /// TRL's conversational form from elsewhere: the last assistant turn is the answer, the
    /// prompt the run stores is the last user turn, and the whole list is kept. The `sft` export
    /// lays its turns out through the chat template; a prompt template has no place for a system
    /// turn, which the export says.
    func testConversationsFromElsewhere() throws {
        let file = """
            {"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello."},{"role":"user","content":"Name a colour"},{"role":"assistant","content":"Blue."}]}
            {"prompt":[{"role":"user","content":"Two?"}],"completion":[{"role":"assistant","content":"2"}]}
            {"prompt":"Plain?","completion":"Yes."}
            """
        let items = try LabelsIO.parseDemonstrations(Data(file.utf8), name: "chat.jsonl")
        XCTAssertEqual(items.map(\.prompt), ["Name a colour", "Two?", "Plain?"])
        XCTAssertEqual(items.map(\.text), ["Blue.", "2", "Yes."])
        XCTAssertEqual(items[1].messages, #"[{"role":"user","content":"Two?"},{"role":"assistant","content":"2"}]"#)
        XCTAssertNil(items[2].messages)
        XCTAssertTrue(LabelsIO.holdsDemonstrations(Data(file.utf8)))
        XCTAssertFalse(LabelsIO.holdsDemonstrations(Data(#"{"prompt":"p","chosen":"a","rejected":"b"}"#.utf8)))

        for c in try TRLExportTests.cases() {
            let (_, store, ctx) = try TRLExportTests.exports(c)
            _ = try store.importDemonstrations(items, annotator: "import", source: "chat.jsonl")
            let conv = try lines(try LabelsIO.export(store: store, format: .sftConversational, context: ctx).text)
            XCTAssertEqual((conv[0]["messages"] as! [[String: String]]).map { $0["role"]! }, ["system", "user", "assistant", "user", "assistant"])
            if c.annotations.usesChatTemplate() {
                let sft = try lines(try LabelsIO.export(store: store, format: .sft, context: ctx).text)
                let t = ctx.tokenizer
                var rendered = try ChatTemplate(c.annotations.chatTemplate!).render(
                    messages: [
                        ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                        ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Name a colour"),
                    ], addGenerationPrompt: true, specialTokens: t.namedSpecialTokens)
                let prefix = t.decode(t.prefixIds)
                if !prefix.isEmpty && rendered.hasPrefix(prefix) { rendered.removeFirst(prefix.count) }
                XCTAssertEqual(sft[0]["prompt"] as? String, rendered, c.name)
                XCTAssertEqual(sft[1]["prompt"] as? String, try c.annotations.standaloneText("Two?", tokenizer: t), "one turn: as the pair export")
            } else {
                XCTAssertThrowsError(try LabelsIO.export(store: store, format: .sft, context: ctx)) {
                    XCTAssertTrue("\($0)".contains("sft-conversational"), "\($0)")
                }
            }
        }
    }

    /// The demonstration files of each case, as rlhf writes them: the fixtures
    /// make_sft_reference.py read (RLHF_UPDATE_FIXTURES=1 rewrites them; then rerun the script).
    func testSFTFilesMatchTheFilesTheReferenceScriptRead() throws {
        let update = ProcessInfo.processInfo.environment["RLHF_UPDATE_FIXTURES"] == "1"
        for c in try TRLExportTests.cases() {
            let (store, ctx) = try runWithDemonstrations(c)
            for format in [LabelsIO.Format.sft, .sftConversational] {
                let text = try LabelsIO.export(store: store, format: format, context: ctx).text
                let url = TRLExportTests.fixtures.appendingPathComponent(c.name).appendingPathComponent("demonstrations-\(format.rawValue).jsonl")
                if update { try text.write(to: url, atomically: true, encoding: .utf8); continue }
                XCTAssertEqual(try String(contentsOf: url, encoding: .utf8), text, "\(c.name)/\(url.lastPathComponent)")
            }
        }
    }

    /// What TRL 1.16's SFTTrainer tokenizes from the exported files: the prompt-completion file
    /// gives the prompt's ids as rlhf lays the prompt out, then the answer's ids and the stop
    /// token, with the loss on the answer and the stop token only; the conversational file,
    /// through the exported chat template, gives the same ids (a model's own template may add
    /// text after the stop token: ChatML's newline).
    func testTRLSeesThePromptAnswerAndStopIds() throws {
        let data = try Data(contentsOf: TRLExportTests.fixtures.appendingPathComponent("sft_reference.json"))
        let ref = try JSONSerialization.jsonObject(with: data) as! [String: [String: [[Int]]]]
        for c in try TRLExportTests.cases() {
            let (store, ctx) = try runWithDemonstrations(c)
            let t = ctx.tokenizer, a = ctx.annotations
            guard let r = ref[c.name] else { XCTFail("no reference for \(c.name)"); continue }
            let demos = try store.demonstrations()
            XCTAssertEqual(r["sft_input_ids"]?.count, demos.count, c.name)
            for (i, d) in demos.enumerated() {
                let prompt = try a.promptIds(store.prompt(id: d.demonstration.promptId)!.text, tokenizer: t)
                let answer = t.encode(d.demonstration.text, allowSpecial: false) + [a.stopTokens(t).first!]
                let ids = (r["sft_input_ids"]![i]).map(Int32.init)
                XCTAssertEqual(ids, prompt + answer, "\(c.name) demonstration \(i)")
                XCTAssertEqual(r["sft_completion_mask"]![i], Array(repeating: 0, count: prompt.count) + Array(repeating: 1, count: answer.count))
                let conv = (r["sft_conversational_input_ids"]![i]).map(Int32.init)
                if a.usesChatTemplate() {
                    XCTAssertTrue(conv.starts(with: prompt + answer), "\(c.name) demonstration \(i): \(conv) vs \(prompt + answer)")
                } else {
                    XCTAssertEqual(conv, prompt + answer, "\(c.name) demonstration \(i)")
                }
            }
        }
    }

    func testMalformedLinesAreRefusedWithTheirLineNumber() {
        let good = #"{"prompt":"p","completion":"c"}"#
        let bad: [(String, String)] = [
            ("{\"prompt\":\"p\"", "invalid JSON"),
            (#"{"prompt":"p"}"#, "no \"completion\" key"),
            (#"{"completion":"c"}"#, "no \"prompt\" key"),
            (#"{"prompt":"p","completion":"  "}"#, "the answer is empty"),
            (#"{"prompt":" ","completion":"c"}"#, "the prompt is empty"),
            (#"{"prompt":"p","completion":[{"role":"assistant","content":"c"}]}"#, "mix"),
            (#"{"prompt":1,"completion":"c"}"#, "must be strings"),
            (#"{"messages":[{"role":"user","content":"p"}]}"#, "last message must be the assistant"),
            (#"{"messages":[{"role":"system","content":"s"},{"role":"assistant","content":"a"}]}"#, "no user message"),
            (#"{"messages":[{"role":"user","content":[{"type":"text","text":"p"}]},{"role":"assistant","content":"a"}]}"#, "string content"),
            (#"{"messages":"hi"}"#, "must be a list"),
            (#"{"prompt":"p","completion":"c","rlhf":{"origin":{"run":"r"}}}"#, "\"rlhf\" is not"),
            ("[1]", "expected a JSON object"),
        ]
        for (line, needle) in bad {
            let file = good + "\n\n" + good + "\n" + line + "\n" + good + "\n"
            XCTAssertThrowsError(try LabelsIO.parseDemonstrations(Data(file.utf8), name: "f.jsonl")) { e in
                XCTAssertTrue("\(e)".hasPrefix("f.jsonl:4: ") && "\(e)".contains(needle), "\(line): \(e)")
            }
        }
        XCTAssertThrowsError(try LabelsIO.parseDemonstrations(Data("\n \n".utf8), name: "f")) { XCTAssertTrue("\($0)".contains("no demonstrations")) }
    }
}
