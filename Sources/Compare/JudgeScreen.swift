import RunStore
import StageKit
import TransformerCore

/// Everything the judging screen shows for one item.
public struct JudgeView: Sendable {
    public var title: String
    public var progress: String
    /// The prompt (untrusted: escaped before display).
    public var prompt: String
    /// The bytes of the completions shown as A and as B (untrusted: escaped before display).
    public var sideA: [UInt8], sideB: [UInt8]
    public var session: JudgeSession
    /// The verdict being reconsidered, when the item was reopened by undo.
    public var reopened: JudgeVerdict?

    public init(title: String, progress: String, prompt: String, sideA: [UInt8], sideB: [UInt8], session: JudgeSession, reopened: JudgeVerdict? = nil)
    {
        self.title = title; self.progress = progress; self.prompt = prompt; self.sideA = sideA; self.sideB = sideB
        self.session = session; self.reopened = reopened
    }
}

/// Lays out the judging screen as lines of text: the prompt, then A and B side by side on a wide
/// terminal (100 columns or more), one above the other on a narrower one. Only this type's own
/// styling sequences are emitted; all model and user text goes through `TerminalSafe` first.
public enum JudgeScreen {
    static let bold = ScreenHeader.bold, reverse = ScreenHeader.reverse, dim = ScreenHeader.dim, reset = ScreenHeader.reset
    /// The styling sequences the screen may contain.
    public static let styles = [bold, reverse, dim, reset]
    /// The narrowest terminal that shows A and B side by side.
    public static let sideBySideWidth = 100

    static func body(_ bytes: [UInt8], width: Int) -> [String] {
        let text = TerminalSafe.escape(bytes: bytes, keepNewlines: true, keepTabs: true)
        return text.isEmpty ? ["\(dim)(empty)\(reset)"] : TextLayout.wrap(text, width)
    }

    /// Lines of the scrolling area.
    static func completionLines(_ v: JudgeView, width: Int) -> [String] {
        if width >= sideBySideWidth {
            let col = (width - 3) / 2
            let a = body(v.sideA, width: col), b = body(v.sideB, width: col)
            var lines = [TextLayout.pad("\(bold)A\(reset)", col + 8) + " \(dim)│\(reset) " + "\(bold)B\(reset)"]
            for i in 0..<max(a.count, b.count) {
                let left = i < a.count ? a[i] : ""
                // Pad by display width (the left text may hold this screen's dim sequence for "(empty)").
                let shown = TextLayout.fit(left, col)
                let visible = TextLayout.width(shown.replacingOccurrences(of: dim, with: "").replacingOccurrences(of: reset, with: ""))
                lines.append(shown + String(repeating: " ", count: max(0, col - visible)) + " \(dim)│\(reset) " + (i < b.count ? b[i] : ""))
            }
            return lines
        }
        var lines: [String] = []
        for (name, bytes) in [("A", v.sideA), ("B", v.sideB)] {
            lines.append("\(bold)[\(name)]\(reset)")
            lines += body(bytes, width: width - 4).map { "    " + $0 }
            lines.append("")
        }
        return lines
    }

    /// The screen for `v` at `width`×`height`: exactly `height` lines, the scrolling area's height
    /// and the number of lines it scrolls over.
    public static func render(_ v: JudgeView, width: Int, height: Int) -> (lines: [String], page: Int, contentLines: Int) {
        let w = max(20, width), h = max(8, height)
        var top: [String] = []
        top += ScreenHeader.lines(title: v.title + (v.reopened != nil ? " · judging again" : ""), progress: v.progress, prompt: v.prompt, width: w)

        var bottom: [String] = [dim + String(repeating: "─", count: w) + reset]
        if let r = v.reopened {
            let said = r == .tie ? "a tie" : r == .skip ? "skip" : "\(r.rawValue) is better"
            bottom.append("\(bold)Your verdict was: \(said).\(reset) A new one replaces it; q leaves it as it was.")
        } else {
            bottom.append("\(bold)Which is better?\(reset) a: A   b: B   t: tie   s: skip")
        }
        if let m = v.session.message {
            bottom.append(bold + TextLayout.truncate(TerminalSafe.escape(m, keepNewlines: false), w) + reset)
        } else {
            let help =
                w >= 100
                ? "a A better  b B better  t tie  s skip  u undo (reopen previous)  j/k scroll  ? help  q quit"
                : "a A  b B  t tie  s skip  u undo  j/k scroll  ? help  q quit"
            bottom.append(dim + TextLayout.truncate(help, w) + reset)
        }

        let page = max(1, h - top.count - bottom.count)
        var body: [String]
        var contentLines = 0
        if v.session.showingHelp {
            body =
                ["\(bold)Keys\(reset)", ""] + JudgeSession.keyHelp.map { "  " + TextLayout.pad($0.0, 13) + $0.1 }
                + [
                    "", "The two completions come from two models; which one is on which side is drawn at random",
                    "for each item (and annotator), so judge the text, not the side. Press any key to go back.",
                ]
            contentLines = body.count
        } else {
            let all = completionLines(v, width: w)
            contentLines = all.count
            body = ScreenHeader.page(all, scroll: v.session.scroll, page: page)
        }
        body = Array(body.prefix(page))
        while body.count < page { body.append("") }
        return ((top + body + bottom).map { TextLayout.fit($0, w) }, page, contentLines)
    }
}
