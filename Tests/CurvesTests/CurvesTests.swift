import Foundation
import XCTest

@testable import Curves

#if canImport(FoundationXML)
import FoundationXML
#endif

/// Collects the `path` elements of an SVG with their attributes.
final class SVGPaths: NSObject, XMLParserDelegate {
    var paths: [[String: String]] = []
    var elements = 0
    func parser(_ parser: XMLParser, didStartElement name: String, namespaceURI: String?, qualifiedName: String?, attributes: [String: String] = [:])
    {
        elements += 1
        if name == "path" { paths.append(attributes) }
    }
}

final class CurvesTests: XCTestCase {
    static let fixtures = Bundle.module.resourceURL!.appendingPathComponent("Fixtures")

    func parse(_ svg: String) -> SVGPaths? {
        let p = XMLParser(data: Data(svg.utf8))
        let d = SVGPaths()
        p.delegate = d
        return p.parse() ? d : nil
    }

    func line(_ n: Int, run: String = "a", metric: String = "m") -> Series {
        Series(run: run, metric: metric, points: (0..<n).map { (Double($0 + 1), Double($0) * 0.5) })
    }

    func testSVGParsesWithOnePathPerSeriesAndTheRightPoints() throws {
        var nan = line(12, run: "b")
        nan.points[3].1 = .nan; nan.points[7].1 = .infinity
        let panels: [(metric: String, series: [Series])] = [("objective/scores", [line(30), nan]), ("objective/kl", [line(1), line(0, run: "b")])]
        let svg = SVGChart.document(title: "runs <a> & \"b\"", panels: panels)
        let doc = try XCTUnwrap(parse(svg), "the SVG is well-formed XML")
        let series = doc.paths.filter { $0["class"] == "series" }
        XCTAssertEqual(series.count, 4, "one path per series")
        XCTAssertEqual(series.map { $0["data-points"] }, ["30", "10", "1", "0"])
        XCTAssertEqual(series[1]["data-skipped"], "2")
        // The path commands match the point counts: one M or L per drawn point.
        for p in series {
            let d = p["d"] ?? ""
            XCTAssertEqual(d.filter { $0 == "M" || $0 == "L" }.count, Int(p["data-points"]!)!)
        }
        XCTAssertEqual(series[1]["d"]!.filter { $0 == "M" }.count, 3, "NaN and infinity break the line into subpaths")
        XCTAssertTrue(svg.contains("runs &lt;a&gt; &amp; &quot;b&quot;"))
        let smooth = try XCTUnwrap(parse(SVGChart.document(title: "t", panels: panels, smooth: 0.9)))
        XCTAssertEqual(smooth.paths.filter { $0["class"] == "smoothed" }.count, 3, "one smoothed path per series with data")
    }

    func testTerminalRenderingMatchesGoldenText() throws {
        // A rising line and a sine wave, two runs overlaid, without colour: exact text.
        let rise = Series(run: "a", metric: "m", points: (0..<20).map { (Double($0), Double($0)) })
        var wavePoints: [(Double, Double)] = []
        for i in 0..<40 {
            let x = Double(i) / 2
            let y: Double = 10 + 8 * sin(Double(i) / 4)
            wavePoints.append((x, y))
        }
        let wave = Series(run: "b", metric: "m", points: wavePoints)
        for (unicode, file) in [(true, "golden_braille.txt"), (false, "golden_ascii.txt")] {
            let style = TerminalChart.Style(unicode: unicode, color: false)
            let overlay: [String] = CurvesView.render([("m", [rise, wave])], width: 60, panelHeight: 10, style: style, smooth: nil)
            let smoothed: [String] = TerminalChart.panel(metric: "smoothed", series: [wave], width: 50, height: 8, style: style, smooth: 0.8)
            let text: String = (overlay + smoothed).joined(separator: "\n") + "\n"
            let url = Self.fixtures.appendingPathComponent(file)
            if ProcessInfo.processInfo.environment["RLHF_WRITE_GOLDEN"] != nil {
                try text.write(
                    to: URL(fileURLWithPath: #filePath).deletingLastPathComponent().appendingPathComponent("Fixtures/\(file)"), atomically: true,
                    encoding: .utf8)
            }
            XCTAssertEqual(text, try String(contentsOf: url, encoding: .utf8), file)
        }
    }

    func testEdgeCasesGiveAPictureOrAMessage() {
        let style = TerminalChart.Style(unicode: true, color: true)
        let empty = TerminalChart.panel(metric: "m", series: [Series(run: "a", metric: "m", points: [])], width: 60, height: 8, style: style)
        XCTAssertTrue(empty.joined().contains("no data yet"))
        let allNaN = TerminalChart.panel(
            metric: "m", series: [Series(run: "a", metric: "m", points: [(1, .nan), (2, .infinity)])], width: 60, height: 8, style: style)
        XCTAssertTrue(allNaN.joined().contains("no finite values (2 NaN or infinite)"))
        let single = TerminalChart.panel(
            metric: "m", series: [Series(run: "a", metric: "m", points: [(5, 0.25)])], width: 60, height: 8, style: style)
        XCTAssertEqual(single.count, 8)
        XCTAssertTrue(single[0].contains("last 0.25"))
        XCTAssertEqual(single.joined().unicodeScalars.filter { (0x2801...0x28FF).contains($0.value) }.count, 1, "one dot")
        let constant = TerminalChart.panel(
            metric: "m", series: [Series(run: "a", metric: "m", points: (0..<10).map { (Double($0), 3) })], width: 60, height: 8, style: style)
        XCTAssertTrue(constant.contains { $0.contains("3 ┤") }, constant.joined(separator: "\n"))
        let huge = TerminalChart.panel(
            metric: "m", series: [Series(run: "a", metric: "m", points: [(0, -1e300), (1, 1e300), (2, 1e-300), (3, .nan)])], width: 80, height: 8,
            style: style)
        XCTAssertTrue(huge[0].contains("(1 NaN/inf skipped)"))
        XCTAssertTrue(huge.joined().contains("1e+300"))
        let tiny = TerminalChart.panel(
            metric: "m", series: [Series(run: "a", metric: "m", points: [(0, 1e-12), (1, 3e-12)])], width: 60, height: 8, style: style)
        XCTAssertEqual(tiny.count, 8)
        // Plain ASCII and no colour when asked.
        let plain = TerminalChart.panel(
            metric: "m", series: [line(10)], width: 40, height: 6, style: TerminalChart.Style(unicode: false, color: false))
        XCTAssertFalse(plain.joined().unicodeScalars.contains { $0.value > 0x7E || $0.value == 0x1B })
        for s in [empty, allNaN, single, constant, tiny] {
            XCTAssertTrue(s.allSatisfy { TextWidth.visible($0) <= 60 }, s.joined(separator: "\n"))
        }
        XCTAssertTrue(huge.allSatisfy { TextWidth.visible($0) <= 80 }, huge.joined(separator: "\n"))
        let narrow = TerminalChart.panel(
            metric: "m", series: [Series(run: "a", metric: "m", points: [(0, -1e300), (1, 1e300), (3, .nan)])], width: 40, height: 6, style: style)
        XCTAssertTrue(narrow.allSatisfy { TextWidth.visible($0) <= 40 }, "notes that do not fit are dropped: " + narrow.joined(separator: "\n"))
        // SVG of the same edge cases parses.
        let panels: [(metric: String, series: [Series])] = [
            ("e", [Series(run: "a", metric: "e", points: [])]), ("n", [Series(run: "a", metric: "n", points: [(1, .nan)])]),
            ("s", [Series(run: "a", metric: "s", points: [(1, 2)])]), ("h", [Series(run: "a", metric: "h", points: [(0, -1e300), (1, 1e300)])]),
        ]
        XCTAssertNotNil(parse(SVGChart.document(title: "edge", panels: panels)))
    }

    func testTicksAreNiceNumbers() {
        XCTAssertEqual(Ticks.nice(0, 1, count: 6), [0, 0.2, 0.4, 0.6, 0.8, 1])
        XCTAssertEqual(Ticks.nice(0, 1, count: 5), [0, 0.5, 1], "the step is the next of 1, 2, 5 × 10^k above range/(count−1)")
        XCTAssertEqual(Ticks.nice(-3, 7, count: 3), [0, 5])
        XCTAssertEqual(Ticks.nice(0.13, 0.47, count: 5), [0.2, 0.3, 0.4])
        XCTAssertEqual(Ticks.label(0.30000000000000004), "0.3")
        XCTAssertEqual(Ticks.label(1234567), "1.2e+06")
        XCTAssertEqual(Ticks.label(-0.0001234), "-0.00012")
        XCTAssertEqual(Ticks.range([2, 2]).0, 1.8, accuracy: 1e-12)
        XCTAssertEqual(Ticks.range([]).1, 1)
    }

    func testEMA() {
        let s = Series(run: "a", metric: "m", points: [(0, 0), (1, 10), (2, .nan), (3, 10)]).smoothed(0.5)
        XCTAssertEqual(s.points.map(\.1), [0, 5, 7.5])
    }

    func testHTMLReportHasEverySectionAndEscapesText() throws {
        var d = ReportData(runName: "r<1>")
        d.samples = [.init(iteration: 1, prompt: "p <script>alert(1)</script>", completion: "c\u{1B}[31m & more", score: 0.5)]
        d.ppoCharts = SVGChart.document(title: "PPO", panels: [("objective/scores", [line(5)])])
        d.models = [.init(id: 1, role: "base", path: "checkpoints/base", parent: nil, step: nil, note: nil, sha: "abcdef0123456789")]
        d.stages = [.init(id: 1, stage: "init", status: "succeeded", started: 0, finished: 1, config: "{\"a\":\"<b>\"}", error: nil)]
        let html = HTMLReport.render(d)
        for id in HTMLReport.sections { XCTAssertTrue(html.contains("<section id=\"\(id)\">"), id) }
        XCTAssertFalse(html.contains("<script>"))
        XCTAssertTrue(html.contains("p &lt;script&gt;alert(1)&lt;/script&gt;"))
        XCTAssertTrue(html.contains("c\\x1b[31m &amp; more"))
        XCTAssertFalse(html.contains("http://") && html.contains("src=\"http"), "no external assets")
        XCTAssertFalse(html.contains("<link") || html.contains("src="))
    }
}

/// Display columns of a line without our ANSI styling.
enum TextWidth {
    static func visible(_ s: String) -> Int {
        var n = 0, inEscape = false
        for u in s.unicodeScalars {
            if inEscape { if u.properties.isAlphabetic { inEscape = false }; continue }
            if u == "\u{1B}" { inEscape = true; continue }
            n += 1
        }
        return n
    }
}
