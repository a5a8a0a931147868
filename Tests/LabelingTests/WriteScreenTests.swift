import StageKit
import XCTest

@testable import Labeling

/// The writing screen key by key: the answer buffer, the session's keys, the layout and what
/// reaches the terminal.
final class WriteScreenTests: XCTestCase {
    func plain(_ line: String) -> String {
        var s = line
        for st in LabelScreen.styles { s = s.replacingOccurrences(of: st, with: "") }
        return s
    }

    func type(_ s: String, into session: inout WriteSession, width: Int = 40) {
        for c in s { _ = session.handle(c == "\n" ? .key(.enter) : .key(.char(c)), width: width) }
    }

    func testTypingBackspaceAndArrowsAreUnicodeSafe() {
        var e = AnswerEditor()
        for c in "Grüße 😀 e" { e.insert(c) }
        e.insert("\u{301}") // a combining acute typed on its own joins the e before it
        XCTAssertEqual(e.text, "Grüße 😀 é")
        XCTAssertEqual(e.lines[0].count, 9, "one character per visible character")
        e.backspace()
        XCTAssertEqual(e.text, "Grüße 😀 ", "Backspace removes the whole é, mark included")
        e.backspace(); e.backspace()
        XCTAssertEqual(e.text, "Grüße ")
        e.newline()
        for c in "zwei" { e.insert(c) }
        XCTAssertEqual(e.text, "Grüße \nzwei")
        e.home(); e.backspace()
        XCTAssertEqual(e.text, "Grüße zwei", "Backspace at a line's start joins it to the line above")
        XCTAssertEqual(e.column, 6)
        e.left(); e.delete()
        XCTAssertEqual(e.text, "Grüßezwei", "Delete removes the character under the cursor")
        e.moveTo((line: 0, column: 2)); e.newline()
        XCTAssertEqual(e.lines.map { String($0) }, ["Gr", "üßezwei"])
        e.left()
        XCTAssertEqual(e.row, 0); XCTAssertEqual(e.column, 2)
        e.right(); e.right()
        XCTAssertEqual(e.row, 1); XCTAssertEqual(e.column, 1)
        e.end(); e.delete()
        XCTAssertEqual(e.text, "Gr\nüßezwei", "Delete at the very end does nothing")
        XCTAssertEqual(AnswerEditor(text: "a\n\nb").lines.count, 3)
    }

    func testUpAndDownMoveByScreenRowsOfAWrappedLine() {
        // 25 characters at width 12 (11 usable) wrap after the spaces: "aaaa bbbb ", "cccc dddd ", "eeee".
        var s = WriteSession(text: "aaaa bbbb cccc dddd eeee")
        let layout = AnswerLayout(s.editor, width: 12)
        XCTAssertEqual(layout.rows.map { $0.end - $0.start }, [10, 10, 4])
        XCTAssertEqual(layout.cursor.row, 2)
        _ = s.handle(.key(.up), width: 12)
        XCTAssertEqual(s.editor.column, 14, "up keeps the display column, one screen row up")
        _ = s.handle(.key(.up), width: 12)
        XCTAssertEqual(s.editor.column, 4)
        _ = s.handle(.key(.up), width: 12)
        XCTAssertEqual(s.editor.column, 0, "up on the first row goes to the line's start")
        _ = s.handle(.key(.down), width: 12)
        XCTAssertEqual(s.editor.column, 10)
        XCTAssertEqual(s.editor.row, 0)
    }

    func testSessionKeys() {
        var s = WriteSession()
        XCTAssertEqual(s.handle(.key(.escape), width: 40), .leave(keepDraft: true), "Esc with nothing typed just leaves")
        XCTAssertEqual(s.handle(.control(0x13), width: 40), .none, "an empty answer is not submitted")
        XCTAssertNotNil(s.message)
        type("Be kind.\n\n", into: &s)
        XCTAssertEqual(s.unsavedEdits, 10)
        s.draftSaved()
        XCTAssertEqual(s.unsavedEdits, 0)
        _ = s.handle(.left, width: 40)
        XCTAssertEqual(s.unsavedEdits, 0, "moving the cursor is not an edit")
        _ = s.handle(.tab, width: 40)
        XCTAssertEqual(s.editor.text, "Be kind.\n\t\n")
        XCTAssertEqual(s.handle(.control(0x13), width: 40), .submit("Be kind."), "Ctrl-S submits, trailing whitespace dropped")
        XCTAssertEqual(s.handle(.control(0x04), width: 40), .submit("Be kind."), "and Ctrl-D")
        XCTAssertEqual(s.handle(.control(0x18), width: 40), .externalEditor)
        XCTAssertEqual(s.handle(.key(.escape), width: 40), .none, "Esc after typing asks")
        XCTAssertEqual(s.mode, .leaving)
        XCTAssertEqual(s.handle(.key(.char("x")), width: 40), .none, "any other key goes on writing")
        XCTAssertEqual(s.editor.text, "Be kind.\n\t\n", "and is not typed")
        _ = s.handle(.key(.escape), width: 40)
        XCTAssertEqual(s.handle(.key(.char("d")), width: 40), .leave(keepDraft: false))
        _ = s.handle(.key(.escape), width: 40)
        XCTAssertEqual(s.handle(.key(.char("k")), width: 40), .leave(keepDraft: true))
        XCTAssertEqual(s.handle(.key(.interrupt), width: 40), .quit)
        s.replaceText("from the editor")
        XCTAssertEqual(s.editor.text, "from the editor")
        XCTAssertEqual(s.unsavedEdits, 2, "the tab, then the editor's text")
    }

    func testEditorKeysDecode() {
        XCTAssertEqual(
            EditorInput.decode(Array("a\u{1B}[C\u{1B}[D\u{1B}[3~\u{1B}[1;5C\u{13}\u{18}\u{09}é\r\u{7F}\u{1B}[A\u{1B}[5~\u{03}".utf8)),
            [
                .key(.char("a")), .right, .left, .delete, .right, .control(0x13), .control(0x18), .tab, .key(.char("é")), .key(.enter),
                .key(.backspace), .key(.up), .key(.pageUp), .key(.interrupt),
            ])
        XCTAssertEqual(EditorInput.decode([0x1B]), [.key(.escape)])
        XCTAssertEqual(EditorInput.decode(Array("😀".utf8)), [.key(.char("😀"))])
    }

    /// Control characters, escape sequences, C1 controls and bidirectional overrides in the
    /// prompt or typed into the answer are shown as escapes; every line fits the terminal.
    func testHostileTextStaysEscaped() {
        var s = WriteSession()
        type("typed \u{9B}6n and \u{202E}reversed\u{202C} and \u{1B}]0;x\u{07} and " + String(repeating: "long ", count: 60), into: &s)
        for (w, h) in [(40, 10), (80, 24), (132, 50)] {
            let view = WriteView(
                title: "rlhf label · run · ana", progress: "1/3 written", prompt: "How do I \u{1B}[2Jwipe\u{1B}[0m a \u{202E}screen?",
                origin: "starting from completion [2]", saved: "draft saved 12:00:00", session: s)
            let (lines, page, _) = WriteScreen.render(view, width: w, height: h)
            XCTAssertEqual(lines.count, h)
            XCTAssertGreaterThan(page, 0)
            for l in lines {
                let p = plain(l)
                XCTAssertFalse(
                    p.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value) },
                    "control character reaches the terminal: \(p.debugDescription)")
                XCTAssertLessThanOrEqual(TextLayout.width(p), w, "too wide: \(p)")
            }
            let all = lines.map(plain).joined(separator: "\n")
            XCTAssertTrue(all.contains("\\e[2Jwipe"), all)
            if w >= 80 { XCTAssertTrue(all.contains("\\u{202E}screen"), all) }
            XCTAssertTrue(all.contains("long"), "the cursor's row (the end of the answer) is on screen: \(all)")
        }
        let wide = WriteScreen.render(
            WriteView(title: "t", progress: "p", prompt: "p", origin: "from scratch", saved: nil, session: s), width: 132, height: 50)
        let all = wide.lines.map(plain).joined()
        XCTAssertTrue(all.contains("typed \\u{9B}6n and \\u{202E}reversed\\u{202C} and \\e]0;x\\x07 and"), all)

        let offer = WriteScreen.draftOffer(
            title: "rlhf label", index: 1, count: 2, savedAt: 0, prompt: "p \u{1B}[31m", draft: "d \u{9B}6n\nline two", width: 60, height: 12)
        XCTAssertEqual(offer.count, 12)
        for l in offer { XCTAssertFalse(plain(l).unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) }) }
        XCTAssertTrue(offer.map(plain).joined().contains("d \\u{9B}6n"))
        XCTAssertTrue(plain(offer.last!).contains("r resume it"))
    }

    /// `w`, `c N` and `e` open an answer from the ranking screen; in the --write screen the
    /// ranking keys do nothing.
    func testRankingScreenKeysOpenTheAnswer() {
        var s = LabelSession(count: 3)
        XCTAssertEqual(s.handle(.char("w")), .write(from: nil))
        XCTAssertEqual(s.handle(.char("e")), .writeInEditor)
        XCTAssertEqual(s.handle(.char("c")), .none)
        XCTAssertEqual(s.mode, .pickToCorrect)
        XCTAssertEqual(s.handle(.char("2")), .write(from: 1))
        _ = s.handle(.char("c"))
        XCTAssertEqual(s.handle(.char("7")), .none)
        XCTAssertEqual(s.message, "there is no completion 7")
        XCTAssertEqual(s.mode, .ranking)
        _ = s.handle(.char("c"))
        XCTAssertEqual(s.handle(.escape), .none)
        XCTAssertEqual(s.handle(.char("1")), .none, "after c is cancelled, 1 ranks again")
        XCTAssertEqual(s.builder.groups, [[0]])

        var none = LabelSession(count: 0, writeOnly: true)
        _ = none.handle(.char("c"))
        XCTAssertEqual(none.mode, .ranking, "no samples: nothing to correct")
        var writeOnly = LabelSession(count: 2, writeOnly: true)
        XCTAssertEqual(writeOnly.handle(.char("1")), .none)
        XCTAssertTrue(writeOnly.builder.groups.isEmpty, "digits do not rank in the --write screen")
        XCTAssertEqual(writeOnly.handle(.enter), .write(from: nil))
        XCTAssertEqual(writeOnly.handle(.char("s")), .skip)
        let lines = LabelScreen.render(
            LabelView(title: "t", progress: "p", prompt: "p", completions: [], session: writeOnly, draftWaiting: true), width: 80, height: 24
        ).lines.map(plain)
        XCTAssertTrue(lines.contains { $0.contains("no samples for this prompt") })
        XCTAssertTrue(lines.contains { $0.contains("a draft is waiting: w resumes it") })
        // Every new state fits small and wide terminals.
        var picking = LabelSession(count: 3)
        _ = picking.handle(.char("c"))
        for session in [writeOnly, picking] {
            for (w, h) in [(40, 10), (80, 24), (100, 30), (132, 50)] {
                let screen = LabelScreen.render(
                    LabelView(title: "t", progress: "p", prompt: "p", completions: [[65], [66], [67]], session: session, draftWaiting: true),
                    width: w, height: h
                ).lines
                XCTAssertEqual(screen.count, h)
                for l in screen { XCTAssertLessThanOrEqual(TextLayout.width(plain(l)), w, "too wide: \(plain(l))") }
            }
        }
        XCTAssertTrue(
            LabelScreen.render(LabelView(title: "t", progress: "p", prompt: "p", completions: [[65]], session: picking), width: 80, height: 24)
                .lines.map(plain).contains { $0.contains("Correct which completion?") })
    }
}
