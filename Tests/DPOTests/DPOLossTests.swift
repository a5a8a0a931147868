import Foundation
import XCTest

@testable import DPO

/// The DPO losses, their gradients with respect to the summed log-probabilities and TRL's reward
/// figures, against PyTorch autograd on a fixed batch (Fixtures/dpo_reference.py).
final class DPOLossTests: XCTestCase {
    struct Fixture: Decodable {
        struct Ranking: Decodable { let policy: [Double]; let reference: [Double]; let pairs: [[Int]] }
        struct Case: Decodable {
            let loss: String; let beta: Double; let label_smoothing: Double
            let loss_value: Double; let gradient: [[Double]]; let figures: [String: Double]
        }
        let rankings: [Ranking]; let cases: [Case]
    }

    func fixture() throws -> Fixture {
        let url = try XCTUnwrap(Bundle.module.url(forResource: "dpo_reference", withExtension: "json", subdirectory: "Fixtures"))
        return try JSONDecoder().decode(Fixture.self, from: Data(contentsOf: url))
    }

    func testLossGradientAndFiguresMatchPyTorch() throws {
        let f = try fixture()
        XCTAssertEqual(f.cases.count, 7)
        for c in f.cases {
            let objective = DPOObjective(beta: c.beta, kind: try XCTUnwrap(DPOLossKind(rawValue: c.loss)), labelSmoothing: c.label_smoothing)
            XCTAssertNil(objective.validationError)
            var stats = DPOStats()
            for (i, r) in f.rankings.enumerated() {
                let (s, g) = objective.ranking(
                    policy: r.policy, reference: r.reference, pairs: r.pairs.map { ($0[0], $0[1]) },
                    weight: 1 / Double(f.rankings.count))
                stats.merge(s)
                for (k, (x, y)) in zip(g, c.gradient[i]).enumerated() {
                    XCTAssertEqual(x, y, accuracy: 1e-5 * max(1, abs(y)), "\(c.loss) β \(c.beta) ε \(c.label_smoothing): ∂L/∂logπ[\(i)][\(k)]")
                }
            }
            let name = "\(c.loss) β \(c.beta) ε \(c.label_smoothing)"
            XCTAssertEqual(stats.loss, c.loss_value, accuracy: 1e-5 * max(1, abs(c.loss_value)), name)
            let figures = Dictionary(uniqueKeysWithValues: stats.metrics())
            for (k, v) in c.figures { XCTAssertEqual(figures[k] ?? .nan, v, accuracy: 1e-5 * max(1, abs(v)), "\(name): \(k)") }
        }
        // The hinge cases have pairs on both sides of the hinge, so both branches were compared.
        let hinge = f.cases.first { $0.loss == "hinge" && $0.beta == 0.5 }!
        XCTAssertTrue(hinge.gradient.joined().contains(0) && hinge.gradient.joined().contains { $0 != 0 })
    }

    func testSettingsThatCannotTrainAreRefused() {
        XCTAssertNotNil(DPOObjective(beta: 0).validationError)
        XCTAssertNotNil(DPOObjective(beta: -1).validationError)
        XCTAssertNotNil(DPOObjective(beta: 0.1, kind: .sigmoid, labelSmoothing: 0.5).validationError)
        XCTAssertNotNil(DPOObjective(beta: 0.1, kind: .ipo, labelSmoothing: 0.1).validationError)
        XCTAssertNil(DPOObjective(beta: 0.1, kind: .sigmoid, labelSmoothing: 0.1).validationError)
    }

    func testLargeMarginsStayFinite() {
        for kind in DPOLossKind.allCases {
            let o = DPOObjective(beta: 1, kind: kind)
            for h in [-1e4, 1e4] {
                let (l, d) = o.pair(h)
                XCTAssertTrue(l.isFinite && d.isFinite, "\(kind) at h = \(h)")
            }
        }
    }
}
