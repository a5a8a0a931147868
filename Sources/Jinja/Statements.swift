import Foundation

indirect enum Node {
    case text(String)
    case output(Expr, line: Int)
    case ifs([(Expr, [Node])], [Node]?)
    case forLoop([String], Expr, [Node], [Node]?, line: Int)
    case set(String, String?, Expr, line: Int)
    /// `{% break %}` / `{% continue %}` (transformers enables Jinja's loopcontrols extension).
    case loopControl(LoopSignal)
    /// `{% generation %}…{% endgeneration %}`: rendered as its body, whose place in the output is
    /// recorded (transformers' AssistantTracker, behind `return_assistant_tokens_mask`).
    case generation([Node])
}

/// How a block of nodes ended: normally, or at a `break` or `continue` of the innermost loop.
enum LoopSignal { case normal, breakLoop, continueLoop }

struct Parser {
    let segments: [Segment]
    var pos = 0
    var loopDepth = 0
    var blockDepth = 0

    init(segments: [Segment]) { self.segments = segments }

    mutating func parseAll() throws -> [Node] {
        let (nodes, end) = try parseBlock(until: [])
        if let (word, line) = end { throw TemplateError("line \(line): {% \(word) %} without an opening tag") }
        return nodes
    }

    /// Parses nodes until a statement whose first word is in `until`; returns that word (and
    /// leaves its statement text in `lastStatement`).
    var lastStatement = ""
    mutating func parseBlock(until: Set<String>) throws -> ([Node], (String, Int)?) {
        blockDepth += 1
        defer { blockDepth -= 1 }
        var nodes: [Node] = []
        while pos < segments.count {
            let seg = segments[pos]; pos += 1
            switch seg {
            case .text(let t): nodes.append(.text(t))
            case .output(let src, let line):
                var p = try ExprParser(src, line: line)
                let e = try p.expression()
                guard p.atEnd() else { throw TemplateError("line \(line): unexpected text after the expression in {{ \(src) }}") }
                nodes.append(.output(e, line: line))
            case .statement(let src, let line):
                let word = src.prefix { $0.isLetter || $0 == "_" }
                let rest = String(src.dropFirst(word.count))
                if until.contains(String(word)) { lastStatement = rest; return (nodes, (String(word), line)) }
                if (word == "if" || word == "for") && blockDepth >= Limits.nesting {
                    throw TemplateError("line \(line): blocks nested more than \(Limits.nesting) levels deep")
                }
                switch word {
                case "if":
                    var branches: [(Expr, [Node])] = []
                    var cond = try Self.expr(rest, line)
                    var elseBody: [Node]?
                    while true {
                        let (body, end) = try parseBlock(until: ["elif", "else", "endif"])
                        guard let (w, l) = end else { throw TemplateError("line \(line): {% if %} is never closed with {% endif %}") }
                        if w == "elif" { branches.append((cond, body)); cond = try Self.expr(lastStatement, l); continue }
                        branches.append((cond, body))
                        if w == "else" {
                            let (eb, e2) = try parseBlock(until: ["endif"])
                            guard e2 != nil else { throw TemplateError("line \(line): {% if %} is never closed with {% endif %}") }
                            elseBody = eb
                        }
                        break
                    }
                    nodes.append(.ifs(branches, elseBody))
                case "for":
                    var p = try ExprParser(rest, line: line)
                    var names = [try p.identifier()]
                    while p.accept(",") { names.append(try p.identifier()) }
                    guard names.count <= 2, p.acceptName("in") else {
                        throw TemplateError("line \(line): expected {% for x in … %} or {% for k, v in … %}")
                    }
                    let iter = try p.orExpr()
                    guard p.atEnd() else { throw TemplateError("line \(line): {% for %} with a filter or recursive is not supported") }
                    loopDepth += 1
                    let (body, end) = try parseBlock(until: ["else", "endfor"])
                    loopDepth -= 1
                    guard let (w, _) = end else { throw TemplateError("line \(line): {% for %} is never closed with {% endfor %}") }
                    var elseBody: [Node]?
                    if w == "else" {
                        let (eb, e2) = try parseBlock(until: ["endfor"])
                        guard e2 != nil else { throw TemplateError("line \(line): {% for %} is never closed with {% endfor %}") }
                        elseBody = eb
                    }
                    nodes.append(.forLoop(names, iter, body, elseBody, line: line))
                case "set":
                    var p = try ExprParser(rest, line: line)
                    let name = try p.identifier()
                    let attr = p.accept(".") ? try p.identifier() : nil
                    guard p.accept("=") else {
                        throw TemplateError("line \(line): block {% set %} … {% endset %} is not supported; use {% set name = … %}")
                    }
                    let e = try p.expression()
                    guard p.atEnd() else { throw TemplateError("line \(line): unexpected text after {% set %}") }
                    nodes.append(.set(name, attr, e, line: line))
                case "generation":
                    // transformers' AssistantTracker: marks assistant text for return_assistant_tokens_mask;
                    // rendered as its body, its place recorded.
                    guard rest.trimmingCharacters(in: .whitespaces).isEmpty else {
                        throw TemplateError("line \(line): unexpected text after {% generation %}")
                    }
                    let (body, end) = try parseBlock(until: ["endgeneration"])
                    guard end != nil else { throw TemplateError("line \(line): {% generation %} is never closed with {% endgeneration %}") }
                    nodes.append(.generation(body))
                case "break", "continue":
                    guard rest.trimmingCharacters(in: .whitespaces).isEmpty else {
                        throw TemplateError("line \(line): unexpected text after {% \(word) %}")
                    }
                    guard loopDepth > 0 else { throw TemplateError("line \(line): {% \(word) %} outside a {% for %} loop") }
                    nodes.append(.loopControl(word == "break" ? .breakLoop : .continueLoop))
                case "endif", "endfor", "elif", "else", "endgeneration":
                    throw TemplateError("line \(line): {% \(word) %} without an opening tag")
                default:
                    throw TemplateError("line \(line): {% \(word.isEmpty ? src : String(word)) %} is not supported by this chat-template interpreter")
                }
            }
        }
        return (nodes, nil)
    }

    static func expr(_ src: String, _ line: Int) throws -> Expr {
        var p = try ExprParser(src, line: line)
        let e = try p.expression()
        guard p.atEnd() else { throw TemplateError("line \(line): unexpected text after the condition") }
        return e
    }
}
