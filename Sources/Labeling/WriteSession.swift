import StageKit
import TransformerCore

/// What the application must do after a key in the writing screen.
public enum WriteAction: Equatable, Sendable {
    case none
    /// Store this text as the demonstration.
    case submit(String)
    /// Go back to the item; `keepDraft` false drops the draft.
    case leave(keepDraft: Bool)
    /// Open the text in `$VISUAL` or `$EDITOR`.
    case externalEditor
    /// Quit `rlhf label` (the draft is kept).
    case quit
}

/// The keyboard state machine of the writing screen, free of I/O so it can be tested key by key.
public struct WriteSession: Equatable, Sendable {
    /// Which line is up at the bottom.
    public enum Mode: Equatable, Sendable {
        case writing
        /// After Esc: keep the draft, drop it, or go on writing.
        case leaving
    }

    public var editor: AnswerEditor
    public internal(set) var mode: Mode = .writing
    /// A one-line note for the user (an error or a confirmation).
    public var message: String?
    /// Edits since the draft was last saved.
    public private(set) var unsavedEdits = 0
    /// Whether anything was typed since the screen opened.
    public private(set) var changed = false
    /// First screen row of the answer shown.
    public var scroll = 0

    /// A session writing `text`, the cursor at its end.
    public init(text: String = "") { editor = AnswerEditor(text: text) }

    /// The draft was saved: the edits so far are safe.
    public mutating func draftSaved() { unsavedEdits = 0 }

    /// Replaces the whole text (what came back from an external editor).
    public mutating func replaceText(_ text: String) {
        guard text != editor.text else { return }
        editor = AnswerEditor(text: text)
        unsavedEdits += 1; changed = true
    }

    /// Handles one key. `width` is the answer area's width (up and down move by screen rows),
    /// `page` its height.
    public mutating func handle(_ key: EditKey, width: Int, page: Int = 10) -> WriteAction {
        if mode == .leaving {
            mode = .writing
            switch key {
            case .key(.char("k")), .key(.escape): return .leave(keepDraft: true)
            case .key(.char("d")): return .leave(keepDraft: false)
            case .key(.interrupt): return .quit
            default: message = "go on writing"; return .none
            }
        }
        message = nil
        let before = editor.revision
        switch key {
        case .key(.char(let c)): editor.insert(c)
        case .tab: editor.insert("\t")
        case .key(.enter): editor.newline()
        case .key(.backspace): editor.backspace()
        case .delete: editor.delete()
        case .left: editor.left()
        case .right: editor.right()
        case .key(.up): moveRows(-1, width: width)
        case .key(.down): moveRows(1, width: width)
        case .key(.pageUp): moveRows(-max(1, page - 1), width: width)
        case .key(.pageDown): moveRows(max(1, page - 1), width: width)
        case .key(.home), .control(0x01): editor.home()
        case .key(.end), .control(0x05): editor.end()
        case .control(0x13), .control(0x04): // Ctrl-S, Ctrl-D
            let text = Self.submittable(editor.text)
            if text.isEmpty { message = "write an answer first (Esc leaves)"; return .none }
            return .submit(text)
        case .control(0x18): return .externalEditor // Ctrl-X
        case .key(.escape):
            if !changed { return .leave(keepDraft: true) }
            mode = .leaving
        case .key(.interrupt): return .quit
        default: break
        }
        if editor.revision != before { unsavedEdits += 1; changed = true }
        return .none
    }

    /// The text that is stored: trailing spaces and newlines dropped (they would teach the
    /// model to end an answer with whitespace before its stop token).
    public static func submittable(_ text: String) -> String {
        var t = Substring(text)
        while let last = t.last, last.isWhitespace { t = t.dropLast() }
        return String(t)
    }

    /// Up and down by screen rows, keeping the display column where the row is long enough.
    mutating func moveRows(_ by: Int, width: Int) {
        let layout = AnswerLayout(editor, width: width)
        let (r, x) = layout.cursor
        let target = min(max(0, r + by), layout.rows.count - 1)
        guard target != r else {
            if by < 0 { editor.home() } else if by > 0 { editor.end() }
            return
        }
        editor.moveTo(layout.position(row: target, column: x))
    }
}

/// The answer wrapped to the screen: each screen row is a run of one line's characters, broken
/// at a space where it can be. Characters are shown through `TerminalSafe`, so a control
/// character or escape sequence in the answer is shown as its escape.
public struct AnswerLayout {
    /// One screen row: characters `start..<end` of line `line`.
    public struct Row: Equatable {
        public var line: Int, start: Int, end: Int
    }

    public private(set) var rows: [Row] = []
    /// The shown form of each character, per line.
    let cells: [[String]]
    let editor: AnswerEditor

    /// Lays `editor` out in `width` columns (one column is left free for the cursor).
    public init(_ editor: AnswerEditor, width: Int) {
        self.editor = editor
        let cols = max(2, width - 1)
        cells = editor.lines.map { line in line.map { TerminalSafe.escape(String($0), keepNewlines: false, keepTabs: false) } }
        for (l, line) in cells.enumerated() {
            var start = 0, w = 0, lastSpace: Int? = nil, i = 0
            while i < line.count {
                let cw = TextLayout.width(line[i])
                if w + cw > cols && i > start {
                    let end = lastSpace.map { $0 + 1 } ?? i
                    rows.append(Row(line: l, start: start, end: end))
                    start = end; i = end; w = 0; lastSpace = nil
                    continue
                }
                if editor.lines[l][i] == " " { lastSpace = i }
                w += cw; i += 1
            }
            rows.append(Row(line: l, start: start, end: line.count))
        }
    }

    /// The cursor's screen row and display column.
    public var cursor: (row: Int, column: Int) {
        for (r, row) in rows.enumerated() where row.line == editor.row {
            let last = r + 1 == rows.count || rows[r + 1].line != row.line
            if editor.column >= row.start && (editor.column < row.end || last) {
                return (r, cells[row.line][row.start..<editor.column].reduce(0) { $0 + TextLayout.width($1) })
            }
        }
        return (0, 0)
    }

    /// The line and character nearest display column `column` of screen row `row`.
    public func position(row r: Int, column: Int) -> (line: Int, column: Int) {
        let row = rows[r]
        let last = r + 1 == rows.count || rows[r + 1].line != row.line
        var x = 0, i = row.start
        while i < row.end {
            let cw = TextLayout.width(cells[row.line][i])
            if x + cw > column { break }
            x += cw; i += 1
        }
        // The end of a row that wraps is the start of the next one: stay on this row.
        if i == row.end && !last && row.end > row.start { i = row.end - 1 }
        return (row.line, i)
    }

    /// Screen row `r` as text, the cursor's cell in reverse video when `showCursor`.
    public func text(row r: Int, showCursor: Bool) -> String {
        let row = rows[r]
        let line = cells[row.line]
        guard showCursor, cursor.row == r else { return line[row.start..<row.end].joined() }
        let c = editor.column
        let reverse = LabelScreen.reverse, reset = LabelScreen.reset
        if c < row.end {
            return line[row.start..<c].joined() + reverse + line[c] + reset + line[(c + 1)..<row.end].joined()
        }
        return line[row.start..<row.end].joined() + reverse + " " + reset
    }
}
