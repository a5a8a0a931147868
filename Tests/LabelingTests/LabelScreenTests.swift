import StageKit
import XCTest

@testable import Labeling

final class LabelScreenTests: XCTestCase {
    /// The screen with our own styles removed.
    func plain(_ line: String) -> String {
        var s = line
        for st in LabelScreen.styles { s = s.replacingOccurrences(of: st, with: "") }
        return s
    }

    let hostile: [[UInt8]] = [
        Array("\u{1B}[2J\u{1B}]0;pwned\u{07}title and \u{1B}[31mred\u{1B}[0m".utf8),
        Array("carriage\rreturn and back\u{8}space and bell\u{07}".utf8) + [0xFF, 0xC3, 0x28],
        Array(
            "\u{9B}6n \u{202E}reversed\u{202C} and a very long line that needs wrapping because it goes on and on and on past the edge of an eighty column terminal window"
                .utf8),
    ]

    func view(_ session: LabelSession = LabelSession(count: 3)) -> LabelView {
        LabelView(
            title: "rlhf label · default · alice", progress: "3/10 done · 2.0/min · ETA 4s",
            prompt: "How do I \u{1B}[5mfix\u{1B}[0m a flat tire?", completions: hostile, session: session,
            guidelines: "Be kind.\n\u{1B}[31mno escapes here\u{1B}[0m", guidelinesSource: "labels/guidelines.md")
    }

    func check(_ lines: [String], width: Int, height: Int, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(lines.count, height, file: file, line: line)
        for l in lines {
            let p = plain(l)
            XCTAssertFalse(
                p.unicodeScalars.contains { $0.value < 0x20 || (0x7F...0x9F).contains($0.value) || (0x202A...0x202E).contains($0.value) },
                "control character reaches the terminal: \(p.debugDescription)", file: file, line: line)
            XCTAssertLessThanOrEqual(TextLayout.width(p), width, "too wide: \(p)", file: file, line: line)
        }
    }

    func testHostileTextIsInertAt80x24() {
        let (lines, _, _) = LabelScreen.render(view(), width: 80, height: 24)
        check(lines, width: 80, height: 24)
        let all = lines.map(plain).joined(separator: "\n")
        XCTAssertTrue(all.contains("\\e]0;pwned\\x07title"), all)
        XCTAssertTrue(all.contains("\\e[31mred"), all)
        XCTAssertTrue(all.contains("carriage\\rreturn"), all)
        XCTAssertTrue(all.contains("\\xff\\xc3("), all)
        XCTAssertTrue(all.contains("\\u{9B}6n \\u{202E}reversed"), all)
        XCTAssertTrue(all.contains("How do I \\e[5mfix"), all)
        XCTAssertTrue(all.contains("[1]") && all.contains("[2]"))
        XCTAssertTrue(lines[0].contains("3/10 done"))
    }

    func testEveryModeFitsSmallAndWideTerminals() {
        var s = LabelSession(count: 3)
        _ = s.handle(.char("2")); _ = s.handle(.char("="))
        for (w, h) in [(40, 10), (80, 24), (132, 50)] {
            check(LabelScreen.render(view(s), width: w, height: h).lines, width: w, height: h)
            var help = s; _ = help.handle(.char("?"))
            check(LabelScreen.render(view(help), width: w, height: h).lines, width: w, height: h)
            var guide = s; _ = guide.handle(.char("g"))
            let g = LabelScreen.render(view(guide), width: w, height: h).lines
            check(g, width: w, height: h)
            if h >= 24 { XCTAssertTrue(g.map(plain).joined().contains("\\e[31mno escapes here")) }
            var flag = s; _ = flag.handle(.char("f")); _ = flag.handle(.char("\u{1B}")); _ = flag.handle(.char("x"))
            check(LabelScreen.render(view(flag), width: w, height: h).lines, width: w, height: h)
        }
        let lines = LabelScreen.render(view(s), width: 80, height: 24).lines.map(plain)
        XCTAssertTrue(lines.contains { $0.contains("Ranking 2 = …") }, lines.joined(separator: "\n"))
        XCTAssertTrue(lines.contains { $0.contains("[2]  rank 1") })
    }

    func testScrollingShowsLaterCompletions() {
        let long = (0..<6).map { i in Array(String(repeating: "word\(i) ", count: 60).utf8) }
        var s = LabelSession(count: 6)
        var v = view(s); v.completions = long
        let first = LabelScreen.render(v, width: 80, height: 24)
        XCTAssertTrue(first.lines.map(plain).joined().contains("more below"))
        XCTAssertGreaterThan(first.contentLines, first.page)
        for _ in 0..<200 { _ = s.handle(.char("j")) }
        s.clampScroll(contentLines: first.contentLines, page: first.page)
        v.session = s
        let last = LabelScreen.render(v, width: 80, height: 24).lines.map(plain).joined()
        XCTAssertTrue(last.contains("word5"))
        XCTAssertFalse(last.contains("word0"))
    }

    func testWrapAndWidths() {
        XCTAssertEqual(TextLayout.width("日本"), 4)
        XCTAssertEqual(TextLayout.width("e\u{301}"), 1)
        XCTAssertEqual(TextLayout.width("😀"), 2)
        XCTAssertEqual(TextLayout.wrap("aaa bbb ccc", 7), ["aaa bbb", "ccc"])
        XCTAssertEqual(TextLayout.wrap("abcdefghij", 4), ["abcd", "efgh", "ij"])
        XCTAssertEqual(TextLayout.wrap("日本語です", 4), ["日本", "語で", "す"])
        XCTAssertEqual(TextLayout.wrap("one\n\ntwo", 10), ["one", "", "two"])
        XCTAssertEqual(TextLayout.truncate("abcdef", 4), "abc…")
    }
}
