import TransformerCore

/// The top of the label, write and judge screens: a reverse-video title bar with the progress
/// at its right end, up to four lines of the prompt, and a rule.
public enum ScreenHeader {
    /// The terminal styles the screens use.
    public static let bold = "\u{1B}[1m", reverse = "\u{1B}[7m", dim = "\u{1B}[2m", reset = "\u{1B}[0m"

    /// The header's lines at `width` columns. `title`, `progress` and `prompt` are raw text: they
    /// are escaped here (`TerminalSafe`).
    public static func lines(title: String, progress: String, prompt: String, width w: Int) -> [String] {
        let progress = TerminalSafe.escape(progress, keepNewlines: false)
        let titleText = TerminalSafe.escape(title, keepNewlines: false)
        let room = max(0, w - TextLayout.width(progress) - 1)
        var top = [reverse + TextLayout.pad(TextLayout.truncate(titleText, room), room) + " " + progress + reset]
        let promptLines = TextLayout.wrap(TerminalSafe.escape(prompt, keepNewlines: true), w - 8)
        let shown = promptLines.prefix(4)
        for (i, l) in shown.enumerated() {
            var line = (i == 0 ? "\(bold)Prompt\(reset)  " : "        ") + l
            if i == shown.count - 1 && promptLines.count > shown.count { line += " …" }
            top.append(line)
        }
        top.append(dim + String(repeating: "─", count: w) + reset)
        return top
    }

    /// The lines of a scrolling area `page` lines high showing `all` from line `scroll` (held
    /// so the last page stays full), with a "more below" hint in its last line when more follow,
    /// padded to exactly `page` lines.
    public static func page(_ all: [String], scroll: Int, page: Int) -> [String] {
        let start = min(scroll, max(0, all.count - page))
        var body = Array(all.dropFirst(start))
        if all.count - start > page && page > 1 {
            body = Array(body.prefix(page - 1)) + ["\(dim)  ↓ more below (j or PgDn)\(reset)"]
        }
        body = Array(body.prefix(page))
        while body.count < page { body.append("") }
        return body
    }
}
