import StageKit
import TransformerCore

/// Everything `rlhf label` shows for one item.
public struct LabelView: Sendable {
    public var title: String
    public var progress: String
    /// The prompt (untrusted: escaped before display).
    public var prompt: String
    /// Each completion's bytes, in display order (untrusted: escaped before display).
    public var completions: [[UInt8]]
    public var session: LabelSession
    /// Whether this is a reopened, already submitted item.
    public var editing: Bool
    /// The guidelines text and where it came from.
    public var guidelines: String
    public var guidelinesSource: String
    /// Whether the annotator has an unsubmitted answer for this prompt (`w` resumes it).
    public var draftWaiting: Bool

    public init(
        title: String, progress: String, prompt: String, completions: [[UInt8]], session: LabelSession,
        editing: Bool = false, guidelines: String = "", guidelinesSource: String = "", draftWaiting: Bool = false
    ) {
        self.title = title; self.progress = progress; self.prompt = prompt; self.completions = completions
        self.session = session; self.editing = editing; self.guidelines = guidelines; self.guidelinesSource = guidelinesSource
        self.draftWaiting = draftWaiting
    }
}

/// Lays out the labeling screen as lines of text. Only this type's own styling sequences
/// (bold, reverse, dim, reset) are ever emitted; all model and user text goes through
/// `TerminalSafe` first.
public enum LabelScreen {
    static let bold = ScreenHeader.bold, reverse = ScreenHeader.reverse, dim = ScreenHeader.dim, reset = ScreenHeader.reset
    /// The styling sequences the screen may contain.
    public static let styles = [bold, reverse, dim, reset]

    /// The key reference, for `--help` and the `?` screen.
    public static let keyHelp: [(String, String)] = [
        ("1-9", "pick the next best completion"),
        ("=", "before a pick: tie it with the previous pick"),
        ("Backspace", "remove the last pick"),
        ("Enter", "submit once every completion is ranked (one left goes last)"),
        ("s", "skip this item"),
        ("f", "flag this item, with a typed reason"),
        ("u", "reopen the previously submitted item (again: one further back)"),
        ("w", "write the ideal answer for this prompt (a demonstration), or resume its draft"),
        ("c, then 1-9", "write it starting from that completion, to correct it"),
        ("e", "write it in $VISUAL or $EDITOR, as git commit does"),
        ("j/k, arrows", "scroll; PgUp/PgDn and space scroll a page"),
        ("g", "show the guidelines"),
        ("?", "this help"),
        ("q, Ctrl-C", "quit (everything submitted is already saved)"),
    ]

    /// Lines of the scrolling area for the completions.
    static func completionLines(_ v: LabelView, width: Int) -> [String] {
        var lines: [String] = []
        if v.completions.isEmpty {
            return ["\(dim)(no samples for this prompt: w writes an answer from scratch)\(reset)"]
        }
        let b = v.session.builder
        let rankOf: [Int: Int] = Dictionary(uniqueKeysWithValues: b.groups.enumerated().flatMap { g, m in m.map { ($0, g + 1) } })
        for (i, bytes) in v.completions.enumerated() {
            let tag = rankOf[i].map { "  \(bold)rank \($0)\(reset)" } ?? ""
            lines.append("\(bold)[\(i + 1)]\(reset)\(tag)")
            let text = TerminalSafe.escape(bytes: bytes, keepNewlines: true, keepTabs: true)
            let body = text.isEmpty ? ["\(dim)(empty)\(reset)"] : TextLayout.wrap(text, width - 4)
            lines += body.map { "    " + $0 }
            lines.append("")
        }
        return lines
    }

    /// The screen for `v` at `width`×`height`: exactly `height` lines.
    public static func render(_ v: LabelView, width: Int, height: Int) -> (lines: [String], page: Int, contentLines: Int) {
        let w = max(20, width), h = max(8, height)
        var top: [String] = []
        top += ScreenHeader.lines(title: v.title + (v.editing ? " · editing a submitted item" : ""), progress: v.progress, prompt: v.prompt, width: w)

        var bottom: [String] = [dim + String(repeating: "─", count: w) + reset]
        let b = v.session.builder
        switch v.session.mode {
        case .pickToCorrect:
            bottom.append("\(bold)Correct which completion?\(reset) press its number (any other key cancels)")
        case _ where v.session.writeOnly:
            let draft = v.draftWaiting ? "   \(bold)a draft is waiting: w resumes it\(reset)" : ""
            bottom.append("\(bold)Write\(reset) the ideal answer" + draft)
        case .flagReason(let reason):
            bottom.append(
                TextLayout.truncate(
                    "\(bold)Flag reason:\(reset) " + TerminalSafe.escape(reason, keepNewlines: false) + "▏  (Enter flags, Esc cancels)", w + 8))
        default:
            let ranking = b.groups.isEmpty && !b.tiePending ? "\(dim)press the number of the best completion\(reset)" : b.summary
            let done = b.isComplete ? "   \(bold)Enter submits\(reset)" : (v.draftWaiting ? "   \(dim)(answer draft waiting: w)\(reset)" : "")
            bottom.append("\(bold)Ranking\(reset) " + ranking + done)
        }
        if let m = v.session.message {
            bottom.append(bold + TextLayout.truncate(TerminalSafe.escape(m, keepNewlines: false), w) + reset)
        } else {
            let help =
                v.session.writeOnly
                ? (w >= 100
                    ? "w write  c+1-9 start from that sample  e $EDITOR  s next prompt  j/k scroll  g guidelines  ? help  q quit"
                    : "w write c+N from sample e $EDITOR s next j/k g ?help q quit")
                : (w >= 120
                    ? "1-9 rank  = tie  Bksp undo  Enter submit  s skip  f flag  u reopen last  w/c/e write  j/k  g guide  ? help  q quit"
                    : w >= 100
                        ? "1-9 rank  = tie  Bksp undo  Enter submit  s skip  f flag  u reopen last  w/c/e write  ? help  q quit"
                        : "1-9 rank =tie Bksp undo Enter submit s skip f flag u back w write ?help q quit")
            bottom.append(dim + TextLayout.truncate(help, w) + reset)
        }

        let page = max(1, h - top.count - bottom.count)
        var body: [String]
        var contentLines = 0
        switch v.session.mode {
        case .help:
            body =
                ["\(bold)Keys\(reset)", ""] + keyHelp.map { "  " + TextLayout.pad($0.0, 13) + $0.1 }
                + ["", "Ctrl-S, Ctrl-Q and Ctrl-Z do nothing here. Press any key to go back."]
            contentLines = body.count
        case .guidelines:
            let text = v.guidelines.isEmpty ? "(no guidelines: \(v.guidelinesSource) was not found)" : v.guidelines
            let all =
                [
                    "\(bold)Guidelines\(reset) \(dim)\(TerminalSafe.escape(v.guidelinesSource, keepNewlines: false)) · j/k scroll · any other key returns\(reset)",
                    "",
                ]
                + TextLayout.wrap(TerminalSafe.escape(text), w - 2).map { " " + $0 }
            contentLines = all.count
            let start = min(v.session.guidelinesScroll, max(0, all.count - page))
            body = Array(all.dropFirst(start))
        default:
            let all = completionLines(v, width: w)
            contentLines = all.count
            body = ScreenHeader.page(all, scroll: v.session.scroll, page: page)
        }
        body = Array(body.prefix(page))
        while body.count < page { body.append("") }
        return ((top + body + bottom).map { fit($0, w) }, page, contentLines)
    }

    /// Cuts a line to `columns` display columns, passing this screen's style sequences through
    /// without counting them.
    static func fit(_ line: String, _ columns: Int) -> String { TextLayout.fit(line, columns) }
}
