import Foundation
import XCTest

@testable import TransformerCore

/// The chat-template interpreter against transformers' `apply_chat_template`
/// (Fixtures/hf/arch/make_chat_fixtures.py): the rendered text and the token ids, for ChatML
/// templates in the style of SmolLM2-Instruct and Qwen2.5-Instruct (default system messages)
/// and a Llama-3.x-Instruct-style template (header tokens, BOS, a date variable).
final class ChatTemplateTests: XCTestCase {
    static let reference: [String: Any] = {
        let data = try! Data(contentsOf: fixtureURL("hf/arch/chat_reference.json"))
        return try! JSONSerialization.jsonObject(with: data) as! [String: Any]
    }()

    func template(_ name: String) throws -> (ChatTemplate, Tokenizer, [String: String], [String: Any]) {
        let t = (Self.reference["templates"] as! [String: Any])[name] as! [String: Any]
        let dir = fixtureURL("hf/arch")
        let source = try String(contentsOf: dir.appendingPathComponent(t["file"] as! String), encoding: .utf8)
        let tok = try Tokenizer.load(tokenizerJSON: dir.appendingPathComponent(t["tokenizer"] as! String).standardizedFileURL)
        return (try ChatTemplate(source, name: name), tok, t["special_tokens_map"] as! [String: String], t)
    }

    func messages(_ v: Any?) -> [ChatMessage] {
        (v as! [[String: String]]).map { ChatMessage(role: $0["role"]!, content: $0["content"]!) }
    }

    func testRenderedTextAndIdsMatchTransformers() throws {
        var checked = 0
        for name in ["chatml", "chatml-default-system", "llama3"] {
            let (tpl, tok, specials, t) = try template(name)
            for c in t["cases"] as! [[String: Any]] {
                let gen = c["add_generation_prompt"] as! Bool
                let text = try tpl.render(
                    messages: messages(c["messages"]), addGenerationPrompt: gen, specialTokens: specials,
                    variables: c["kwargs"] as! [String: String])
                let what = "\(name) \(c["conversation"]!) gen=\(gen)"
                XCTAssertEqual(text, c["rendered"] as? String, what)
                XCTAssertEqual(tok.encode(text), int32s(c["ids"]), what)
                checked += 1
            }
        }
        XCTAssertEqual(checked, 30)
    }

    /// Without `date_string`, the Llama-3-style template formats today's date with strftime_now.
    func testDefaultDateComesFromStrftimeNow() throws {
        let (tpl, tok, specials, t) = try template("llama3")
        let d = (t["default_date"] as! [String: Any])["transformers_default"] as! [String: Any]
        var comps = DateComponents()
        comps.year = 2026; comps.month = 12; comps.day = 2; comps.hour = 12
        let now = Calendar(identifier: .gregorian).date(from: comps)!
        let text = try tpl.render(
            messages: [ChatMessage(role: "user", content: "Hello! How are you today?")], addGenerationPrompt: true,
            specialTokens: specials, now: now)
        XCTAssertEqual(text, d["rendered"] as? String)
        XCTAssertEqual(tok.encode(text), int32s(d["ids"]))
    }

    func testScopingLoopsAndExpressions() throws {
        let src = """
            {%- set ns = namespace(n=0) %}{% set outer = 'o' %}
            {%- for m in messages %}{% set outer = 'inner' %}{% set ns.n = ns.n + 1 %}
            {{- loop.index }}/{{ loop.length }}{{ ',' if not loop.last else '' }}
            {%- endfor %}
            {{- ' ' ~ outer ~ ' ' ~ ns.n ~ ' ' ~ messages[-1].content[1:3] | upper ~ ' ' ~ (messages | length) }}
            {%- if 'x' in messages[0]['content'] and messages[0].role is not none %} has-x{% endif %}
            {{- ' ' ~ ' pad '.strip() ~ '|' ~ [1, 2, 3] | join('-') ~ '|' ~ {'a': 'b'}.a ~ '|' ~ missing | default('dflt') }}
            {%- for k, v in {'p': 1, 'q': 2}.items() %} {{ k }}={{ v }}{% endfor %}
            {%- for x in [] %}never{% else %} empty{% endfor %}
            {{- ' ' ~ 7 // 2 ~ ' ' ~ 7 % 3 ~ ' ' ~ "a\\tb" | length ~ ' ' ~ ["x"] | tojson }}
            """
        let tpl = try ChatTemplate(src)
        let out = try tpl.render(
            messages: [ChatMessage(role: "user", content: "xyz"), ChatMessage(role: "assistant", content: "abcd")],
            addGenerationPrompt: false)
        XCTAssertEqual(out, "1/2,2/2 o 2 BC 2 has-x pad|1-2-3|b|dflt p=1 q=2 empty 3 1 3 [\"x\"]")
    }

    /// Filters and tests with arguments (select/reject, selectattr/rejectattr, map, items, int,
    /// float, abs; `is divisibleby 3`, `is equalto 'a'`), `break`/`continue`, and whitespace
    /// (a strip before a tag, CRLF, the final newline) against transformers' renderings
    /// (Fixtures/hf/arch/make_jinja_reference.py).
    func testFiltersAndTestsMatchTransformers() throws {
        let data = try Data(contentsOf: fixtureURL("hf/arch/jinja_reference.json"))
        let ref = try JSONSerialization.jsonObject(with: data) as! [String: Any]
        let specials = ref["special_tokens_map"] as! [String: String]
        let cases = ref["cases"] as! [[String: Any]]
        XCTAssertEqual(cases.count, 12)
        for c in cases {
            let name = c["name"] as! String
            let tpl = try ChatTemplate(c["template"] as! String, name: name)
            let text = try tpl.render(messages: messages(c["messages"]), addGenerationPrompt: false, specialTokens: specials)
            XCTAssertEqual(text, c["rendered"] as? String, name)
        }
    }

    /// trim_blocks and lstrip_blocks as transformers sets them, and `-` whitespace control.
    func testWhitespaceControl() throws {
        let tpl = try ChatTemplate("a\n    {% if true %}\n  b\n    {% endif %}\nc {{- '  d' }}  {#- note -#}  e\n{# c #}\nf")
        XCTAssertEqual(try tpl.render(messages: [], addGenerationPrompt: false), "a\n  b\nc  de\nf")
    }

    func testUnsupportedConstructsAreRefusedWithTheirLine() {
        let cases: [(String, String)] = [
            ("hello\n{% macro m() %}x{% endmacro %}", "line 2: {% macro %} is not supported"),
            ("{{ messages | wordcount }}", "line 1: filter wordcount is not supported"),
            ("{% if x %}no end", "{% if %} is never closed"),
            ("{{ x ", "never closed"),
            ("{% for m in messages %}{% endif %}", "without an opening tag"),
            ("\n\n{{ x is sameas none }}", "line 3: test sameas is not supported"),
            ("{{ [1] | select('sameas', 1) | list }}", "test sameas is not supported"),
            ("{{ ['a'] | map('wordcount') | list }}", "filter map needs attribute= or the name of a supported filter"),
            ("{{ 1 is equalto }}", "test equalto needs an argument"),
            ("{{ [1, 2][::0] }}", "slice step cannot be zero"),
            ("a\n{% if true %}{% break %}{% endif %}", "line 2: {% break %} outside a {% for %} loop"),
            ("{% set x %}block{% endset %}", "block {% set %}"),
            ("{{ 'a'.zfill(3) }}", "string method zfill is not supported"),
        ]
        for (src, needle) in cases {
            do {
                let t = try ChatTemplate(src, name: "t.jinja")
                _ = try t.render(messages: [], addGenerationPrompt: false)
                XCTFail("accepted: \(src)")
            } catch {
                XCTAssertTrue("\(error)".contains(needle), "\(src): \(error)")
            }
        }
        XCTAssertThrowsError(
            try ChatTemplate("{{ raise_exception('only user and assistant roles') }}").render(messages: [], addGenerationPrompt: false)
        ) {
            XCTAssertTrue("\($0)".contains("only user and assistant roles"))
        }
    }

    /// A chat template comes with a downloaded model folder: one written to exhaust the stack,
    /// the memory or the time is refused with an error.
    func testHostileTemplatesAreRefused() {
        let deep = 5000
        let cases: [(String, String)] = [
            ("{{ " + String(repeating: "(", count: deep) + "1" + String(repeating: ")", count: deep) + " }}", "nested more than 64 levels"),
            ("{{ " + String(repeating: "not ", count: deep) + "x }}", "nested more than 64 levels"),
            ("{{ " + String(repeating: "- ", count: deep) + "1 }}", "nested more than 64 levels"),
            (String(repeating: "{% if true %}", count: deep) + String(repeating: "{% endif %}", count: deep), "blocks nested more than 64"),
            ("{% set ns = namespace(s='ab') %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}{% endfor %}", "grows past 16 MB"),
            ("{% for i in range(1000000) %}{% for j in range(1000000) %}{% endfor %}{% endfor %}", "more than 2000000 steps"),
            ("{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}", "nested more than 64 levels"),
            (
                "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x | tojson }}",
                "nested more than 64 levels"
            ),
            (
                "{% set ns = namespace(x=[]) %}{% for i in range(100000) %}{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x == ns.x }}",
                "nested more than 64 levels"
            ),
            (
                "{% set ns = namespace(head=none) %}{% for i in range(100000) %}{% set n = namespace(next=none) %}{% set n.next = ns.head %}{% set ns.head = n %}{% endfor %}",
                "nested more than 64 levels"
            ),
            ("{{ 1" + String(repeating: " + 1", count: 100_000) + " }}", "a chain of operators"),
            ("{{ 'a'" + String(repeating: " ~ 'a'", count: 100_000) + " }}", "a chain of operators"),
            ("{{ messages" + String(repeating: ".x", count: 100_000) + " }}", "a chain of operators"),
            ("{{ 'a'" + String(repeating: " | upper", count: 100_000) + " }}", "a chain of operators"),
            ("{{ x" + String(repeating: " or x", count: 100_000) + " }}", "a chain of operators"),
            ("{% set ns = namespace(l=[]) %}{% for i in range(1000000) %}{% set ns.l = ns.l + [i] %}{% endfor %}", "steps"),
            (
                "{% set ns = namespace(l=['" + String(repeating: "x", count: 1000)
                    + "']) %}{% for i in range(40) %}{% set ns.l = ns.l + ns.l %}{% endfor %}", "rendering takes more than"
            ),
            (
                "{% set ns = namespace(l=['" + String(repeating: "x", count: 1000)
                    + "']) %}{% for i in range(17) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l | join }}", "grows past 16 MB"
            ),
            ("{% set ns = namespace(s='" + String(repeating: "a", count: 100_000) + "') %}{{ ns.s.replace('a', ns.s) }}", "replace could grow"),
            ("{{ [1, [2]] | tojson(indent=100000000) }}", "indent of 100000000"),
        ]
        for (src, needle) in cases {
            do {
                let t = try ChatTemplate(src, name: "hostile.jinja")
                _ = try t.render(messages: [ChatMessage(role: "user", content: "hi")], addGenerationPrompt: true)
                XCTFail("accepted: \(src.prefix(80))")
            } catch {
                XCTAssertTrue("\(error)".contains(needle), "\(src.prefix(80)): \(error)")
            }
        }
        // A negative indent is Python's: newlines and no spaces.
        XCTAssertEqual(try ChatTemplate("{{ [1, 2] | tojson(indent=-1) }}").render(messages: [], addGenerationPrompt: false), "[\n1,\n2\n]")
    }

    /// The run's explicit template, then the chat template, then the raw prompt; --chat forces
    /// the chat template (and needs one), chat false skips it.
    func testPromptPrecedence() throws {
        let (_, tok, _, _) = try template("chatml")
        let chat = "{{ bos_token ~ '<|im_start|>' ~ messages[0].content ~ '<|im_end|>' }}"
        let both = ModelAnnotations(promptTemplate: "Q: {prompt}\nA:", chatTemplate: chat)
        XCTAssertEqual(try both.promptText("hi", tokenizer: tok), "Q: hi\nA:")
        XCTAssertEqual(try both.promptText("hi", tokenizer: tok, chat: true), "<|im_start|>hi<|im_end|>")
        let onlyChat = ModelAnnotations(chatTemplate: chat)
        XCTAssertEqual(try onlyChat.promptText("hi", tokenizer: tok), "<|im_start|>hi<|im_end|>")
        XCTAssertEqual(try onlyChat.promptIds("hi", tokenizer: tok), [604] + tok.encode("hi") + [605])
        XCTAssertEqual(try onlyChat.promptText("hi", tokenizer: tok, chat: false), "hi")
        // Special-token text in a prompt stays plain text outside a chat template.
        XCTAssertEqual(try ModelAnnotations().promptIds("<|im_end|>", tokenizer: tok), tok.encode("<|im_end|>", allowSpecial: false))
        XCTAssertThrowsError(try ModelAnnotations().promptText("hi", tokenizer: tok, chat: true)) {
            XCTAssertTrue("\($0)".contains("no chat template"))
        }
    }

    func testTemplateIsFoundInEitherPlace() throws {
        let dir = temporaryFolder()
        XCTAssertNil(try ChatTemplate.load(folder: dir))
        try #"{"chat_template": "{{ bos_token }}hi"}"#.write(
            to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try ChatTemplate.load(folder: dir)?.source, "{{ bos_token }}hi")
        try #"{"chat_template": [{"name": "tool_use", "template": "t"}, {"name": "default", "template": "d"}]}"#
            .write(to: dir.appendingPathComponent("tokenizer_config.json"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try ChatTemplate.load(folder: dir)?.source, "d")
        try "from file".write(to: dir.appendingPathComponent("chat_template.jinja"), atomically: true, encoding: .utf8)
        XCTAssertEqual(try ChatTemplate.load(folder: dir)?.source, "from file")
    }
}
