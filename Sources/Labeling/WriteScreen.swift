import Foundation
import StageKit
import TransformerCore

/// Everything the writing screen shows.
public struct WriteView: Sendable {
    public var title: String
    public var progress: String
    /// The prompt (untrusted: escaped before display).
    public var prompt: String
    /// Where the answer started: "from scratch", "from completion [2]", "your draft of …".
    public var origin: String
    /// When the draft was last saved, as shown ("draft saved 15:04:05"), or nil.
    public var saved: String?
    public var session: WriteSession

    public init(title: String, progress: String, prompt: String, origin: String, saved: String?, session: WriteSession) {
        self.title = title; self.progress = progress; self.prompt = prompt; self.origin = origin; self.saved = saved; self.session = session
    }
}

/// Lays out the writing screen and the screen that offers a draft back, as lines of text. As in
/// `LabelScreen`, only the screen's own styles are emitted; the prompt, the completions and the
/// answer itself go through `TerminalSafe`.
public enum WriteScreen {
    static let bold = LabelScreen.bold, reverse = LabelScreen.reverse, dim = LabelScreen.dim, reset = LabelScreen.reset

    /// The keys of the writing screen, for `--help` and the docs.
    public static let keyHelp: [(String, String)] = [
        ("typing", "goes into the answer; Enter starts a new line"),
        ("arrows", "move; Home/End (Ctrl-A/Ctrl-E) go to a line's ends; PgUp/PgDn a page"),
        ("Backspace/Del", "delete before / under the cursor"),
        ("Ctrl-S", "submit the answer as a demonstration (Ctrl-D too)"),
        ("Ctrl-X", "edit the answer in $VISUAL or $EDITOR, then come back"),
        ("Esc", "leave the answer: k keeps the draft, d drops it"),
        ("Ctrl-C", "quit (the draft is kept)"),
    ]

    /// The answer area's width on a `width`-column screen.
    public static func answerWidth(_ width: Int) -> Int { max(20, width) - 2 }

    /// The screen for `v` at `width`×`height`: exactly `height` lines, the number of answer rows
    /// shown, and the first answer row shown (the cursor's row is always on screen).
    public static func render(_ v: WriteView, width: Int, height: Int) -> (lines: [String], page: Int, scroll: Int) {
        let w = max(20, width), h = max(8, height)
        var top: [String] = []
        let progress = TerminalSafe.escape(v.progress, keepNewlines: false)
        let titleText = TerminalSafe.escape(v.title, keepNewlines: false) + " · writing"
        let room = max(0, w - TextLayout.width(progress) - 1)
        top.append(reverse + TextLayout.pad(TextLayout.truncate(titleText, room), room) + " " + progress + reset)
        let promptLines = TextLayout.wrap(TerminalSafe.escape(v.prompt, keepNewlines: true), w - 8)
        let room2 = h >= 16 ? 5 : 2
        let shown = promptLines.prefix(room2)
        for (i, l) in shown.enumerated() {
            var line = (i == 0 ? "\(bold)Prompt\(reset)  " : "        ") + l
            if i == shown.count - 1 && promptLines.count > shown.count { line += " …" }
            top.append(line)
        }
        let note = [TerminalSafe.escape(v.origin, keepNewlines: false), v.saved].compactMap { $0 }.joined(separator: " · ")
        top.append(dim + "── Answer " + note + " " + String(repeating: "─", count: max(0, w - 11 - TextLayout.width(note))) + reset)

        var bottom: [String] = [dim + String(repeating: "─", count: w) + reset]
        switch v.session.mode {
        case .leaving:
            bottom.append("\(bold)Leave this answer?\(reset) k keeps the draft · d drops it · any other key goes on writing")
        case .writing:
            if let m = v.session.message {
                bottom.append(bold + TextLayout.truncate(TerminalSafe.escape(m, keepNewlines: false), w) + reset)
            } else {
                let chars = v.session.editor.text.count
                bottom.append(dim + "\(chars) character\(chars == 1 ? "" : "s")" + reset)
            }
        }
        let help =
            w >= 100
            ? "Ctrl-S submit  Esc leave  Ctrl-X $EDITOR  Enter new line  arrows move  Ctrl-C quit (draft kept)"
            : "^S submit Esc leave ^X $EDITOR arrows move ^C quit"
        bottom.append(dim + TextLayout.truncate(help, w) + reset)

        let page = max(1, h - top.count - bottom.count)
        let layout = AnswerLayout(v.session.editor, width: answerWidth(w))
        let cursor = layout.cursor.row
        var start = min(v.session.scroll, max(0, layout.rows.count - page))
        if cursor < start { start = cursor }
        if cursor >= start + page { start = cursor - page + 1 }
        var body = (start..<min(layout.rows.count, start + page)).map { " " + layout.text(row: $0, showCursor: true) }
        while body.count < page { body.append("") }
        return ((top + body + bottom).map { LabelScreen.fit($0, w) }, page, start)
    }

    /// The screen that offers an unsubmitted draft back after a restart.
    public static func draftOffer(
        title: String, index: Int, count: Int, savedAt: Double, prompt: String, draft: String, width: Int, height: Int
    ) -> [String] {
        let w = max(20, width), h = max(8, height)
        let f = DateFormatter()
        f.dateFormat = "yyyy-MM-dd HH:mm:ss"
        let when = f.string(from: Date(timeIntervalSince1970: savedAt))
        var lines = [
            reverse + TextLayout.pad(TerminalSafe.escape(title, keepNewlines: false) + " · unsubmitted answer", w) + reset, "",
            "\(bold)An answer you were writing was not submitted\(reset) (draft \(index) of \(count), saved \(when)).", "",
        ]
        let promptLines = TextLayout.wrap(TerminalSafe.escape(prompt, keepNewlines: true), w - 8)
        for (i, l) in promptLines.prefix(3).enumerated() { lines.append((i == 0 ? "\(bold)Prompt\(reset)  " : "        ") + l) }
        lines.append(dim + "── Draft " + String(repeating: "─", count: max(0, w - 9)) + reset)
        let room = max(1, h - lines.count - 2)
        let draftLines = TextLayout.wrap(TerminalSafe.escape(draft, keepNewlines: true), w - 2).map { " " + $0 }
        lines += draftLines.prefix(room)
        if draftLines.count > room, let last = lines.popLast() { lines.append(last + " …") }
        while lines.count < h - 1 { lines.append("") }
        lines.append("\(bold)r\(reset) resume it   \(bold)d\(reset) discard it   \(bold)l\(reset) later (keep it)   \(bold)q\(reset) quit")
        return lines.prefix(h).map { LabelScreen.fit($0, w) }
    }
}
