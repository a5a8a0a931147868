/// The text of an answer being written: lines of characters (grapheme clusters, so one
/// Backspace removes one visible character, accents and emoji included) and a cursor. Free of
/// I/O, so it can be tested key by key.
public struct AnswerEditor: Equatable, Sendable {
    /// The lines, without their newlines; never empty.
    public private(set) var lines: [[Character]]
    /// The cursor: a line, and a position in it (0 … its length).
    public private(set) var row = 0, column = 0
    /// Counts the changes to the text (not the cursor's moves).
    public private(set) var revision = 0

    /// An editor holding `text`, the cursor at its end.
    public init(text: String = "") {
        lines = text.split(separator: "\n", omittingEmptySubsequences: false).map { Array($0) }
        row = lines.count - 1
        column = lines[row].count
    }

    /// The whole text, lines joined by newlines.
    public var text: String { lines.map { String($0) }.joined(separator: "\n") }

    /// Inserts what was typed at the cursor. A combining mark joins the character before it, as
    /// it does on screen.
    public mutating func insert(_ c: Character) {
        if c == "\n" { newline(); return }
        revision += 1
        if column > 0, String([lines[row][column - 1], c]).count == 1 {
            lines[row][column - 1] = Character(String([lines[row][column - 1], c]))
            return
        }
        lines[row].insert(c, at: column)
        column += 1
    }

    /// Splits the line at the cursor.
    public mutating func newline() {
        revision += 1
        let tail = Array(lines[row][column...])
        lines[row].removeSubrange(column...)
        lines.insert(tail, at: row + 1)
        row += 1; column = 0
    }

    /// Removes the character before the cursor (at a line's start: joins it to the line above).
    public mutating func backspace() {
        if column > 0 || row > 0 { revision += 1 }
        if column > 0 {
            lines[row].remove(at: column - 1)
            column -= 1
        } else if row > 0 {
            column = lines[row - 1].count
            lines[row - 1] += lines[row]
            lines.remove(at: row)
            row -= 1
        }
    }

    /// Removes the character under the cursor (at a line's end: joins the next line).
    public mutating func delete() {
        if column < lines[row].count || row + 1 < lines.count { revision += 1 }
        if column < lines[row].count {
            lines[row].remove(at: column)
        } else if row + 1 < lines.count {
            lines[row] += lines[row + 1]
            lines.remove(at: row + 1)
        }
    }

    public mutating func left() {
        if column > 0 { column -= 1 } else if row > 0 { row -= 1; column = lines[row].count }
    }

    public mutating func right() {
        if column < lines[row].count { column += 1 } else if row + 1 < lines.count { row += 1; column = 0 }
    }

    /// Moves `by` lines up (negative) or down, keeping the column where the line is long enough.
    public mutating func vertical(_ by: Int) {
        row = min(max(0, row + by), lines.count - 1)
        column = min(column, lines[row].count)
    }

    /// Puts the cursor at a line and character (clamped to the text).
    public mutating func moveTo(_ p: (line: Int, column: Int)) {
        row = min(max(0, p.line), lines.count - 1)
        column = min(max(0, p.column), lines[row].count)
    }

    public mutating func home() { column = 0 }
    public mutating func end() { column = lines[row].count }
}
