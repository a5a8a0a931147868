import Foundation
import TransformerCore
import XCTest

@testable import RunStore
@testable import SFT

/// Demonstrations as token sequences: the prompt–completion form (the completion and its stop
/// token carry loss), conversations through a chat template with `{% generation %}` markers and
/// through a prefix-preserving one without them (the assistant's turns carry loss), and cutting.
final class SFTDataTests: XCTestCase {
    static let tokenizer: Tokenizer = {
        let tok = try! BPETrainer.train(corpus: SyntheticText.generate(bytes: 20_000, seed: 3), vocabSize: 300)
        return tok
    }()

    func record(_ text: String, messages: String? = nil) -> DemonstrationRecord {
        DemonstrationRecord(
            id: 1, demonstration: NewDemonstration(promptId: 2, text: text, annotator: "a", messages: messages, startedAt: 0, submittedAt: 0),
            replacedBy: nil)
    }

    func testPromptAndCompletion() throws {
        let tok = Self.tokenizer, notes = ModelAnnotations(promptTemplate: "Q: {prompt}\nA:")
        let ex = try XCTUnwrap(SFTData.example(record(" glad to help"), prompt: "hello", tokenizer: tok, annotations: notes, maxLength: 1000))
        let p = try notes.promptIds("hello", tokenizer: tok), c = tok.encode(" glad to help", allowSpecial: false) + [tok.eosId!]
        XCTAssertEqual(ex.ids, p + c)
        XCTAssertEqual(ex.lossMask, [Bool](repeating: false, count: p.count) + [Bool](repeating: true, count: c.count))
        XCTAssertEqual(ex.lossTokens, c.count)
        // Cut at max_length, keeping the start; nothing of the completion left: no example.
        let cut = try XCTUnwrap(SFTData.example(record(" glad to help"), prompt: "hello", tokenizer: tok, annotations: notes, maxLength: p.count + 1))
        XCTAssertEqual(cut.ids, Array((p + c).prefix(p.count + 1)))
        XCTAssertEqual(cut.lossTokens, 1)
        XCTAssertNil(try SFTData.example(record(" glad to help"), prompt: "hello", tokenizer: tok, annotations: notes, maxLength: p.count))
    }

    let conversation = """
        [{"role": "user", "content": "hi there"}, {"role": "assistant", "content": "hello friend"},
         {"role": "user", "content": [{"type": "text", "text": "and more"}]}, {"role": "assistant", "content": "sure thing"}]
        """

    /// The tokens of `text`'s pieces, each either the assistant's or not, for a tokenizer whose
    /// pre-tokenizer splits at the pieces' boundaries (they start with a space or a marker).
    func expected(_ pieces: [(String, Bool)]) -> (ids: [Int32], mask: [Bool]) {
        let tok = Self.tokenizer
        let ids = tok.encode(pieces.map(\.0).joined())
        var mask: [Bool] = [], offset = 0
        var ranges: [Range<Int>] = []
        for (text, assistant) in pieces {
            let n = text.utf8.count
            if assistant { ranges.append(offset..<(offset + n)) }
            offset += n
        }
        offset = 0
        for id in ids {
            let n = tok.decodeBytes([id]).count
            mask.append(ranges.contains { $0.overlaps(offset..<(offset + n)) })
            offset += n
        }
        return (ids, mask)
    }

    func testConversationThroughGenerationMarkers() throws {
        let tok = Self.tokenizer
        var notes = ModelAnnotations(promptTemplate: nil)
        notes.chatTemplate = """
            {%- for m in messages -%}
            {%- if m.role == 'assistant' -%}{% generation %}{{ ' A: ' + m.content + '<|endoftext|>' }}{% endgeneration %}
            {%- else -%}{{ ' U: ' + m.content }}{%- endif -%}
            {%- endfor -%}
            {%- if add_generation_prompt -%}{{ ' A:' }}{%- endif -%}
            """
        let ex = try XCTUnwrap(
            SFTData.example(record("sure thing", messages: conversation), prompt: "x", tokenizer: tok, annotations: notes, maxLength: 1000))
        let e = expected([
            (" U: hi there", false), (" A: hello friend<|endoftext|>", true), (" U: and more", false), (" A: sure thing<|endoftext|>", true),
        ])
        XCTAssertEqual(ex.ids, e.ids)
        XCTAssertEqual(ex.lossMask, e.mask)
        XCTAssertTrue(ex.lossMask.contains(false) && ex.lossMask.contains(true))
        XCTAssertEqual(ex.ids.filter { $0 == tok.eosId }.count, 2, "the end of each turn is one token")
        XCTAssertTrue(zip(ex.ids, ex.lossMask).filter { $0.0 == tok.eosId }.allSatisfy(\.1), "and carries loss")
    }

    func testConversationThroughAPrefixPreservingTemplate() throws {
        // The plain layout's template (written by rlhf for a prompt template): no markers; each
        // assistant turn is what it adds after the conversation before it.
        let tok = Self.tokenizer, notes = ModelAnnotations(promptTemplate: " Q: {prompt} A:")
        let ex = try XCTUnwrap(
            SFTData.example(record("sure thing", messages: conversation), prompt: "x", tokenizer: tok, annotations: notes, maxLength: 1000))
        let e = expected([
            (" Q: hi there A:", false), ("hello friend<|endoftext|>", true), (" Q: and more A:", false), ("sure thing<|endoftext|>", true),
        ])
        XCTAssertEqual(ex.ids, e.ids)
        XCTAssertEqual(ex.lossMask, e.mask)
        // A template that is neither marked nor prefix-preserving is refused, saying why.
        var odd = ModelAnnotations(promptTemplate: nil)
        odd.chatTemplate = "{% for m in messages %}{{ m.content }}{% endfor %}{% if not add_generation_prompt %}!{% endif %}"
        XCTAssertThrowsError(try SFTData.example(record("x", messages: conversation), prompt: "x", tokenizer: tok, annotations: odd, maxLength: 1000))
        {
            XCTAssertTrue("\($0)".contains("generation"), "\($0)")
        }
        XCTAssertThrowsError(
            try SFTData.example(record("x", messages: "{\"role\": 1}"), prompt: "x", tokenizer: tok, annotations: notes, maxLength: 9)
        ) {
            XCTAssertTrue("\($0)".contains("messages"), "\($0)")
        }
        XCTAssertThrowsError(
            try SFTData.example(
                record("x", messages: "[{\"role\": \"user\", \"content\": \"hi\"}]"), prompt: "x", tokenizer: tok, annotations: notes, maxLength: 9)
        ) { XCTAssertTrue("\($0)".contains("no assistant turn"), "\($0)") }
    }
}
