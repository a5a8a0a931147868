import StageKit
import XCTest

@testable import Labeling

final class RankingBuilderTests: XCTestCase {
    func testPicksTiesBackspaceAndFinish() {
        var b = RankingBuilder(count: 4)
        XCTAssertNil(b.pick(1)) // completion 2 is best
        XCTAssertEqual(b.pick(1), .alreadyPicked)
        XCTAssertEqual(b.pick(7), .outOfRange)
        XCTAssertNil(b.tie())
        XCTAssertNil(b.pick(3)) // 4 ties with 2
        XCTAssertEqual(b.summary, "2 = 4")
        XCTAssertNil(b.pick(0))
        XCTAssertEqual(b.summary, "2 = 4 > 1")
        XCTAssertNil(b.removeLast())
        XCTAssertEqual(b.summary, "2 = 4")
        XCTAssertNil(b.tie()); XCTAssertNil(b.removeLast()) // Backspace first cancels a pending tie
        XCTAssertEqual(b.summary, "2 = 4")
        XCTAssertFalse(b.tiePending)
        XCTAssertEqual(b.finish(), .incomplete(left: 2))
        XCTAssertNil(b.pick(2))
        XCTAssertNil(b.finish()) // the one left goes last
        XCTAssertEqual(b.ranks, [3, 1, 2, 1])
        XCTAssertEqual(RankingBuilder(count: 4, ranks: [3, 1, 2, 1]).groups, [[1, 3], [2], [0]])
    }

    func testTieBeforeAnyPickAndEmptyBackspace() {
        var b = RankingBuilder(count: 2)
        XCTAssertEqual(b.tie(), .nothingToTie)
        XCTAssertEqual(b.removeLast(), .nothingToRemove)
        XCTAssertNil(b.pick(0)); XCTAssertNil(b.tie())
        XCTAssertNil(b.finish()) // a pending tie takes the last one into the group
        XCTAssertEqual(b.ranks, [1, 1])
    }
}

final class LabelSessionTests: XCTestCase {
    func keys(_ s: String) -> [Key] { s.map { Key.char($0) } }

    func run(_ session: inout LabelSession, _ keys: [Key]) -> [SessionAction] {
        keys.map { session.handle($0) }.filter { $0 != .none }
    }

    func testRankAndSubmit() {
        var s = LabelSession(count: 3)
        XCTAssertEqual(run(&s, keys("31") + [.enter]), [.submit([2, 3, 1])])
        var t = LabelSession(count: 3)
        XCTAssertEqual(run(&t, keys("3") + [.enter]), [])
        XCTAssertEqual(t.message, "rank every completion first (2 left)")
        XCTAssertEqual(run(&t, keys("=1") + [.enter]), [.submit([1, 2, 1])])
    }

    func testMessagesForBadPicks() {
        var s = LabelSession(count: 3)
        _ = s.handle(.char("4")); XCTAssertEqual(s.message, "there is no completion 4")
        _ = s.handle(.char("1")); XCTAssertNil(s.message)
        _ = s.handle(.char("1")); XCTAssertTrue(s.message?.contains("already ranked") ?? false)
        _ = s.handle(.char("0")); XCTAssertEqual(s.builder.summary, "1")
        _ = s.handle(.backspace); XCTAssertEqual(s.builder.summary, "")
    }

    func testSkipFlagReopenQuit() {
        var s = LabelSession(count: 2)
        XCTAssertEqual(s.handle(.char("s")), .skip)
        XCTAssertEqual(s.handle(.char("u")), .reopenPrevious)
        XCTAssertEqual(s.handle(.char("q")), .quit)
        XCTAssertEqual(s.handle(.interrupt), .quit)
        _ = s.handle(.char("f"))
        XCTAssertEqual(s.mode, .flagReason(""))
        XCTAssertEqual(s.handle(.enter), .none) // an empty reason is refused
        XCTAssertEqual(run(&s, keys("off topicx") + [.backspace]), []) // letters, including s, q and u, are typed
        XCTAssertEqual(s.mode, .flagReason("off topic"))
        XCTAssertEqual(s.handle(.enter), .flag("off topic"))
        XCTAssertEqual(s.mode, .ranking)
        _ = s.handle(.char("f")); _ = s.handle(.char("x")); _ = s.handle(.escape)
        XCTAssertEqual(s.mode, .ranking)
        XCTAssertEqual(s.message, "flag cancelled")
    }

    func testHelpGuidelinesAndScrolling() {
        var s = LabelSession(count: 2)
        _ = s.handle(.char("?")); XCTAssertEqual(s.mode, .help)
        XCTAssertEqual(s.handle(.char("1")), .none); XCTAssertEqual(s.mode, .ranking)
        XCTAssertEqual(s.builder.summary, "", "the key that closes help does not pick")
        _ = s.handle(.char("g")); XCTAssertEqual(s.mode, .guidelines)
        _ = s.handle(.char("j")); _ = s.handle(.down); XCTAssertEqual(s.guidelinesScroll, 2)
        _ = s.handle(.char("x")); XCTAssertEqual(s.mode, .ranking)
        _ = s.handle(.char("j")); _ = s.handle(.char("j")); _ = s.handle(.up)
        XCTAssertEqual(s.scroll, 1)
        _ = s.handle(.pageDown, page: 10); XCTAssertEqual(s.scroll, 10)
        s.clampScroll(contentLines: 12, page: 10); XCTAssertEqual(s.scroll, 2)
        _ = s.handle(.pageUp, page: 10); XCTAssertEqual(s.scroll, 0)
    }

    func testFlowControlAndSuspendKeysDoNothing() {
        var s = LabelSession(count: 2)
        for k in KeyDecoder.decode([0x13, 0x11, 0x1A]) { XCTAssertEqual(s.handle(k), .none) }
        XCTAssertEqual(s, LabelSession(count: 2))
    }

    func testPrefilledFromStoredRanks() {
        var s = LabelSession(count: 3, ranks: [2, 1, 3])
        XCTAssertEqual(s.builder.summary, "2 > 1 > 3")
        XCTAssertEqual(s.handle(.enter), .submit([2, 1, 3]))
        _ = s.handle(.backspace); _ = s.handle(.backspace)
        XCTAssertEqual(run(&s, keys("3") + [.enter]), [.submit([3, 1, 2])])
    }
}

final class KeyDecoderTests: XCTestCase {
    func testDecodesTerminalInput() {
        XCTAssertEqual(KeyDecoder.decode(Array("1=2".utf8)), [.char("1"), .char("="), .char("2")])
        XCTAssertEqual(KeyDecoder.decode([0x0D, 0x0A, 0x7F, 0x08, 0x03]), [.enter, .enter, .backspace, .backspace, .interrupt])
        XCTAssertEqual(
            KeyDecoder.decode(Array("\u{1B}[A\u{1B}[B\u{1B}OA\u{1B}[5~\u{1B}[6~\u{1B}[H".utf8)), [.up, .down, .up, .pageUp, .pageDown, .home])
        XCTAssertEqual(KeyDecoder.decode([0x1B]), [.escape])
        XCTAssertEqual(KeyDecoder.decode(Array("é日".utf8)), [.char("é"), .char("日")])
        XCTAssertEqual(KeyDecoder.decode([0x13, 0x11, 0x1A]), [.other, .other, .other])
        XCTAssertEqual(KeyDecoder.decode([0xFF, 0x61]), [.other, .char("a")])
    }
}
