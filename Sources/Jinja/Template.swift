import Foundation

/// A parsed Jinja template: the subset of Jinja that Hugging Face chat templates use, rendered
/// as transformers renders them (`trim_blocks` and `lstrip_blocks` on).
///
/// Supported: text, `{{ … }}`, `{# … #}`, `{% if/elif/else/endif %}`, `{% for x in … %}` (with
/// `loop.index`, `index0`, `first`, `last`, `length`, `revindex`, two-name unpacking and an
/// `else` branch), `{% break %}`, `{% continue %}`, `{% generation %}` (transformers' marker of
/// assistant text), `{% set name = … %}` and `{% set ns.attr = … %}`, whitespace control (`-`),
/// string, integer, list and dict literals, `+ - * / // % ~`, comparisons, `in`, `and/or/not`,
/// `x if c else y`, subscripts and slices (with a step: `messages[::-1]`), attribute access, the tests `defined`, `undefined`,
/// `none`, `string`, `number`, `integer`, `boolean`, `mapping`, `sequence`, `iterable`, `true`,
/// `false`, `float`, `lower`, `upper`, `odd`, `even`, `divisibleby`, `equalto`/`eq`/`==`, `ne`/`!=`,
/// `lt`/`<`, `le`/`<=`, `gt`/`>`, `ge`/`>=` and `in` (with an argument in parentheses or after a
/// space), the filters `trim`, `length`, `count`, `lower`, `upper`, `capitalize`, `title`,
/// `string`, `first`, `last`, `join`, `default`, `replace`, `list`, `tojson`, `items`, `select`,
/// `reject`, `selectattr`, `rejectattr`, `map`, `int`, `float`, `abs`, `reverse`, string methods
/// (`strip`, `startswith`, `split`, …), dict `items/keys/values/get`, and the globals
/// `strftime_now`, `raise_exception`, `namespace`, `range` and `dict`. Anything else is refused
/// when the template is read, with its line and construct.
///
/// The template is hostile input: nesting, text sizes and rendering steps are bounded (`Limits`).
public struct Template: @unchecked Sendable { // immutable once parsed; its literals hold no namespace
    let nodes: [Node]

    /// Parses `source`; throws a `TemplateError` with the line of what it cannot read.
    public init(_ source: String) throws {
        var parser = Parser(segments: try Lexer.segments(source))
        nodes = try parser.parseAll()
    }

    /// Renders the template with `globals` beside the functions `strftime_now` (which formats
    /// `now`), `raise_exception`, `namespace`, `range` and `dict`; a global of the same name
    /// hides a function. Throws a `TemplateError`.
    public func render(_ globals: [String: Variable], now: Date) throws -> String {
        try renderMarkingGeneration(globals, now: now).text
    }

    /// Whether the template has `{% generation %}` blocks (transformers' marker of the assistant's
    /// text, which `return_assistant_tokens_mask` and TRL's `assistant_only_loss` read).
    public var marksGeneration: Bool { Self.hasGeneration(nodes) }

    static func hasGeneration(_ nodes: [Node]) -> Bool {
        nodes.contains { n in
            switch n {
            case .generation: return true
            case .ifs(let branches, let elseBody): return branches.contains { hasGeneration($0.1) } || hasGeneration(elseBody ?? [])
            case .forLoop(_, _, let body, let elseBody, _): return hasGeneration(body) || hasGeneration(elseBody ?? [])
            default: return false
            }
        }
    }

    /// `render`, and the UTF-8 byte ranges of the text that `{% generation %}` blocks wrote, in
    /// order (empty blocks leave none).
    public func renderMarkingGeneration(_ globals: [String: Variable], now: Date) throws -> (text: String, generation: [Range<Int>]) {
        var scope: [String: Value] = [
            "strftime_now": .function("strftime_now"), "raise_exception": .function("raise_exception"),
            "namespace": .function("namespace"), "range": .function("range"), "dict": .function("dict"),
        ]
        for (k, v) in globals { scope[k] = Value(v) }
        var ctx = Context(scopes: [scope], now: now)
        var out = ""
        _ = try ctx.run(nodes, &out)
        return (out, ctx.generationRanges)
    }
}

/// A value a template is rendered with: a global, or a part of one.
public indirect enum Variable: Sendable {
    /// Python's `None`.
    case none
    /// `True` or `False`.
    case bool(Bool)
    /// A text.
    case string(String)
    /// A list.
    case list([Variable])
    /// A dict, its keys in this order (a repeated key keeps its first place and its last value).
    case dict([(String, Variable)])
}

/// What is wrong with a template, found when it is read or rendered; the message starts with
/// the line (`line 3: …`) where there is one.
public struct TemplateError: Error, CustomStringConvertible {
    /// The message.
    public let description: String
    init(_ d: String) { description = d }
}

extension Value {
    init(_ v: Variable) {
        switch v {
        case .none: self = .none
        case .bool(let b): self = .bool(b)
        case .string(let s): self = .string(s)
        case .list(let l): self = .list(l.map(Value.init))
        case .dict(let pairs):
            var d: [String: Value] = [:], keys: [String] = []
            for (k, x) in pairs { if d[k] == nil { keys.append(k) }; d[k] = Value(x) }
            self = .dict(d, keys)
        }
    }
}
