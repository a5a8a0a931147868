import Foundation
import Jinja
import XCTest

/// The interpreter on its own, through its public API: what `ChatTemplate` (TransformerCore)
/// builds on. ChatTemplateTests cover the chat templates of real models.
final class TemplateTests: XCTestCase {
    func render(_ source: String, _ globals: [String: Variable] = [:]) throws -> String {
        try Template(source).render(globals, now: Date(timeIntervalSince1970: 0))
    }

    func testGlobalsLoopsAndFilters() throws {
        let messages: Variable = .list([.dict([("role", .string("user")), ("content", .string("hi"))])])
        XCTAssertEqual(
            try render(
                "{% for m in messages %}{{ m.role | upper }}: {{ m['content'] }}{% if not loop.last %}, {% endif %}{% endfor %}",
                ["messages": messages]), "USER: hi")
        XCTAssertEqual(try render("{{ range(3) | join('-') }} {{ strftime_now('%Y') }}"), "0-1-2 1970")
        XCTAssertEqual(try render("{{ x | tojson }}", ["x": .string("a\"b\n")]), "\"a\\\"b\\n\"")
    }

    /// `{% generation %}` renders as its body and records where that body landed in the output,
    /// in UTF-8 bytes, as transformers' AssistantTracker does for `return_assistant_tokens_mask`.
    func testGenerationBlocksAreRecorded() throws {
        let source = """
            {%- for m in messages -%}
            {%- if m.role == 'assistant' -%}{% generation %}{{ m.content }}<end>{% endgeneration %}{%- else -%}é{{ m.content }}: {% endif -%}
            {%- endfor -%}
            """
        let t = try Template(source)
        XCTAssertTrue(t.marksGeneration)
        XCTAssertFalse(try Template("{% if x %}{{ x }}{% endif %}").marksGeneration)
        let turn = { (r: String, c: String) -> Variable in .dict([("role", .string(r)), ("content", .string(c))]) }
        let messages: Variable = .list([turn("user", "hi"), turn("assistant", "hello"), turn("user", "more"), turn("assistant", "")])
        let (text, ranges) = try t.renderMarkingGeneration(["messages": messages], now: Date(timeIntervalSince1970: 0))
        XCTAssertEqual(text, "éhi: hello<end>émore: <end>")
        XCTAssertEqual(text, try t.render(["messages": messages], now: Date(timeIntervalSince1970: 0)))
        let bytes = Array(text.utf8)
        XCTAssertEqual(ranges.map { String(decoding: bytes[$0], as: UTF8.self) }, ["hello<end>", "<end>"])
        XCTAssertEqual(ranges.first, 6..<16, "byte offsets (é is two bytes)")
    }

    func testErrorsNameTheProblem() {
        XCTAssertThrowsError(try render("{{ x | nosuchfilter }}")) { XCTAssertTrue("\($0)".contains("nosuchfilter"), "\($0)") }
        XCTAssertThrowsError(try render("{% if x %}")) { XCTAssertTrue($0 is TemplateError, "\($0)") }
    }

    /// Integer arithmetic at the ends of the range wraps, as + and - do, rather than stopping the
    /// program; range() refuses a span that overflows instead of asking for 2^64 items.
    func testIntegersAtTheLimits() throws {
        XCTAssertEqual(
            try render("{{ -(-9223372036854775807 - 1) }} {{ -(5) }} {{ 9223372036854775807 + 1 }}"),
            "-9223372036854775808 -5 -9223372036854775808")
        XCTAssertThrowsError(try render("{% for i in range(-9223372036854775807 - 1, 9223372036854775807) %}{% endfor %}")) {
            XCTAssertTrue("\($0)".contains("range too long"), "\($0)")
        }
        XCTAssertEqual(try render("{{ range(9223372036854775807, -9223372036854775807 - 1) | length }}"), "0")
    }
}
