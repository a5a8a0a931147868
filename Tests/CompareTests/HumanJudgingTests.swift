import Foundation
import StageKit
import TransformerCore
import XCTest

@testable import Compare
@testable import RunStore

/// Human judging's statistics, sides, keys and screen, without a terminal.
final class HumanJudgingTests: XCTestCase {
    /// The Wilson interval against values computed from its definition (the p a score test does
    /// not reject, found by bisection) by Reference/wilson_reference.py, whose output is
    /// Reference/wilson_reference.txt. 81/263 is also Newcombe (1998), Table I: 0.2553–0.3662.
    func testWilsonIntervalMatchesTheReferenceScript() {
        let reference: [(Double, Int, Double, Double)] = [
            (8, 10, 0.490162, 0.943318), (0, 20, 0.000000, 0.161125), (7, 10, 0.396778, 0.892209), (3.5, 5, 0.298791, 0.927416),
            (12.5, 20, 0.409490, 0.800229), (81, 263, 0.255289, 0.366210), (1, 1, 0.206549, 1.000000), (50, 100, 0.403832, 0.596168),
        ]
        for (s, n, low, high) in reference {
            let ci = HeadToHead.wilson(successes: s, trials: n)
            XCTAssertEqual(ci.low, low, accuracy: 2e-6, "\(s)/\(n)")
            XCTAssertEqual(ci.high, high, accuracy: 2e-6, "\(s)/\(n)")
        }
    }

    /// Ties count half a win, skips not at all; the interval is the Wilson interval of that rate.
    func testWinRateCountsTiesHalfAndSkipsNot() {
        let t = JudgeTally([.win, .win, .win, .loss, .tie, .skip, .skip])
        XCTAssertEqual([t.wins, t.losses, t.ties, t.skips, t.judged], [3, 1, 1, 2, 5])
        XCTAssertEqual(t.winRate, 0.7) // (3 + 0.5) / 5
        // 3.5 of 5 in the reference script's output.
        XCTAssertEqual(t.interval.low, 0.298791, accuracy: 2e-6)
        XCTAssertEqual(t.interval.high, 0.927416, accuracy: 2e-6)
        XCTAssertTrue(JudgeTally([.skip]).winRate.isNaN)
    }

    /// Cohen's kappa on a hand-worked example: ten items, W = first better, L = second better,
    /// T = tie.
    ///     x: W W W W W L L L T T
    ///     y: W W W W L L L T T W
    /// Alike on items 1-4, 6, 7 and 9: p_o = 7/10. Both raters give W 5 times, L 3 and T 2:
    /// p_e = 0.5·0.5 + 0.3·0.3 + 0.2·0.2 = 0.38. κ = (0.7 − 0.38) / (1 − 0.38) = 0.32 / 0.62 = 0.516129.
    func testCohenKappaOnAHandWorkedExample() {
        let x = Array("WWWWWLLLTT"), y = Array("WWWWLLLTTW")
        XCTAssertEqual(JudgmentResults.cohenKappa(x, y), 0.32 / 0.62, accuracy: 1e-12)
        XCTAssertEqual(JudgmentResults.cohenKappa(x, y), 0.516129, accuracy: 1e-6)
        XCTAssertEqual(JudgmentResults.cohenKappa(x, x), 1, accuracy: 1e-12)
        XCTAssertTrue(JudgmentResults.cohenKappa(Array("WW"), Array("WW")).isNaN, "one category only: chance agreement is 1")
        XCTAssertTrue(JudgmentResults.cohenKappa([Character](), []).isNaN)
    }

    /// The same example as stored judgments: each annotator sees the sides drawn for them, so
    /// the verdicts are un-blinded before they are compared; items either skipped, or judged by
    /// one annotator only, are left out of the agreement.
    func testResultsUnblindTheSidesAndAgreeOnSharedItems() {
        let x = Array("WWWWWLLLTT") + ["S", "W"], y = Array("WWWWLLLTTW") + ["W"]
        func judgments(_ outcomes: [Character], annotator: String, flip: Bool) -> [NewJudgment] {
            outcomes.enumerated().map { i, o in
                // The first model's side alternates, and the other annotator's is the opposite.
                let first: JudgeSide = (i % 2 == 0) != flip ? .a : .b
                let verdict: JudgeVerdict
                switch o {
                case "W": verdict = first == .a ? .a : .b
                case "L": verdict = first == .a ? .b : .a
                case "T": verdict = .tie
                default: verdict = .skip
                }
                return NewJudgment(
                    stageRunId: 1, promptId: Int64(i), modelId: 3, otherModelId: 2, completionId: Int64(100 + i), otherCompletionId: Int64(200 + i),
                    firstSide: first, verdict: verdict, annotator: annotator, shownAt: 0, judgedAt: 1)
            }
        }
        let js = judgments(x, annotator: "xena", flip: false) + judgments(y, annotator: "yann", flip: true)
        let r = JudgmentResults.compute(js, stageRunId: 1, modelId: 3, otherModelId: 2, items: 12)
        XCTAssertEqual(r.annotators.map(\.name), ["xena", "yann"])
        XCTAssertEqual(r.annotators[0].tally, JudgeTally(wins: 6, losses: 3, ties: 2, skips: 1))
        XCTAssertEqual(r.annotators[1].tally, JudgeTally(wins: 6, losses: 3, ties: 2, skips: 0))
        XCTAssertEqual(r.overall, JudgeTally(wins: 12, losses: 6, ties: 4, skips: 1), "every judgment pooled")
        XCTAssertEqual(r.judgedItems, 12)
        XCTAssertEqual(r.agreements.count, 1)
        let g = r.agreements[0]
        XCTAssertEqual(g.items, 10, "the item xena skipped and the one only she judged are left out")
        XCTAssertEqual(g.percent, 0.7, accuracy: 1e-12)
        XCTAssertEqual(g.kappa, 0.32 / 0.62, accuracy: 1e-12)
    }

    /// A judgment un-blinds through the side the first model was shown on.
    func testOutcomeAndPairFollowTheFirstSide() {
        var j = NewJudgment(
            stageRunId: 1, promptId: 1, modelId: 3, otherModelId: 2, completionId: 10, otherCompletionId: 20, firstSide: .b, verdict: .a,
            annotator: "x", shownAt: 0, judgedAt: 1)
        XCTAssertEqual(j.outcome, .loss)
        XCTAssertTrue(j.chosenAndRejected! == (20, 10))
        j.verdict = .b
        XCTAssertEqual(j.outcome, .win)
        XCTAssertTrue(j.chosenAndRejected! == (10, 20))
        j.firstSide = .a
        XCTAssertEqual(j.outcome, .loss)
        j.verdict = .tie
        XCTAssertNil(j.chosenAndRejected)
    }

    /// Sides are a function of the seed, the annotator and the item: the same at every call,
    /// different across items (both sides occur, about half each), and not the same for every
    /// annotator.
    func testSidesAreSeededPerItemAndAnnotator() {
        let items = (Int64(0)..<200).map { (i: Int64) -> JudgeItem in JudgeItem(promptId: i, completionId: 1000 + i, otherCompletionId: 2000 + i) }
        let ana = items.map { HumanComparison.firstSide(seed: 7, annotator: "ana", item: $0) }
        XCTAssertEqual(ana, items.map { HumanComparison.firstSide(seed: 7, annotator: "ana", item: $0) })
        let onA = ana.filter { $0 == JudgeSide.a }.count
        XCTAssertTrue((70...130).contains(onA), "\(onA) of 200 on A")
        let bo = items.map { HumanComparison.firstSide(seed: 7, annotator: "bo", item: $0) }
        XCTAssertTrue((60...140).contains(zip(ana, bo).filter { $0 != $1 }.count), "another annotator gets other sides")
        let reseeded = items.map { HumanComparison.firstSide(seed: 8, annotator: "ana", item: $0) }
        XCTAssertNotEqual(ana, reseeded)
    }

    func testKeys() {
        var s = JudgeSession()
        XCTAssertEqual(s.handle(.char("a")), .verdict(.a))
        XCTAssertEqual(s.handle(.char("b")), .verdict(.b))
        XCTAssertEqual(s.handle(.char("t")), .verdict(.tie))
        XCTAssertEqual(s.handle(.char("s")), .verdict(.skip))
        XCTAssertEqual(s.handle(.char("u")), .undo)
        XCTAssertEqual(s.handle(.char("q")), .quit)
        XCTAssertEqual(s.handle(.interrupt), .quit)
        XCTAssertEqual(s.handle(.char("x")), .none)
        XCTAssertNotNil(s.message)
        _ = s.handle(.char("j")); _ = s.handle(.down)
        XCTAssertEqual(s.scroll, 2)
        _ = s.handle(.char("?"))
        XCTAssertTrue(s.showingHelp)
        XCTAssertEqual(s.handle(.char("a")), .none, "a key on the help screen only closes it")
        XCTAssertFalse(s.showingHelp)
        for k in KeyDecoder.decode([0x13, 0x11, 0x1A]) { XCTAssertEqual(s.handle(k), .none) } // Ctrl-S, Ctrl-Q, Ctrl-Z
    }

    /// Hostile model and user text is escaped, never emitted, on both layouts; every line fits.
    func testScreenEscapesHostileTextAndFits() {
        let hostile = Array("\u{1B}]0;pwned\u{07}title \u{1B}[2J wiped\r\nnext".utf8) + [0xFF, 0xFE]
        var session = JudgeSession()
        session.message = "typed \u{1B}[31m"
        let v = JudgeView(
            title: "rlhf compare · run · \u{1B}[5mme", progress: "1/3 done", prompt: "say \u{1B}[1mhi\u{9B}", sideA: hostile,
            sideB: Array("日本語 and a long line ".utf8) + Array(repeating: UInt8(ascii: "x"), count: 300), session: session)
        for (w, h) in [(80, 24), (120, 30), (40, 10)] {
            let lines = JudgeScreen.render(v, width: w, height: h).lines
            XCTAssertEqual(lines.count, h)
            var all = lines.joined(separator: "\n")
            for style in JudgeScreen.styles { all = all.replacingOccurrences(of: style, with: "") }
            XCTAssertFalse(all.contains("\u{1B}"), "an escape sequence from the text reached the screen at \(w)×\(h)")
            XCTAssertFalse(all.contains("\u{07}") || all.contains("\r") || all.contains("\u{9B}"))
            for l in lines {
                var plain = l
                for style in JudgeScreen.styles { plain = plain.replacingOccurrences(of: style, with: "") }
                XCTAssertLessThanOrEqual(TextLayout.width(plain), w, plain)
            }
            if w >= 100 {
                XCTAssertTrue(all.contains("\\e]0;pwned\\x07title"), all)
                XCTAssertTrue(all.contains("│"), "side by side at \(w) columns")
            }
        }
        let narrow = JudgeScreen.render(v, width: 80, height: 40).lines.joined(separator: "\n")
        XCTAssertTrue(narrow.contains("[A]") && narrow.contains("[B]") && !narrow.contains("│"), "one above the other at 80 columns")
        XCTAssertTrue(narrow.contains("\\e[2J wiped\\r"), narrow)
    }
}
