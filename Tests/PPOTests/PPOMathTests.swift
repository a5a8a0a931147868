import Foundation
import XCTest

@testable import PPO

/// PPOMath against Fixtures/ppo_reference.json, written by Fixtures/make_ppo_reference.py (numpy,
/// float64, plain loops from the published formulas; gradients by central differences).
final class PPOMathTests: XCTestCase {
    static let ref: [String: Any] = {
        let url = Bundle.module.url(forResource: "ppo_reference", withExtension: "json", subdirectory: "Fixtures")!
        return try! JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
    }()
    func f(_ k: String) -> [Float] { (Self.ref[k] as! [NSNumber]).map(\.floatValue) }
    func d(_ k: String) -> Double { (Self.ref[k] as! NSNumber).doubleValue }
    var lengths: [Int] { (Self.ref["lengths"] as! [NSNumber]).map(\.intValue) }
    var width: Int { Self.ref["R"] as! Int }
    var mask: [Bool] { (0..<(lengths.count * width)).map { $0 % width < lengths[$0 / width] } }

    func close(_ a: [Float], _ b: [Float], _ tol: Float, _ what: String, line: UInt = #line) {
        XCTAssertEqual(a.count, b.count, what, line: line)
        for i in 0..<a.count { XCTAssertEqual(a[i], b[i], accuracy: tol, "\(what)[\(i)]", line: line) }
    }

    func testRewardsGAEReturnsAndWhitening() {
        let rewards = PPOMath.tokenRewards(
            logprobs: f("logprobs"), refLogprobs: f("ref_logprobs"), scores: f("scores"),
            lengths: lengths, width: width, beta: Float(d("beta")))
        close(rewards, f("rewards"), 1e-6, "rewards")
        let (adv, ret) = PPOMath.gae(
            rewards: f("rewards"), values: f("values"), lengths: lengths, width: width,
            gamma: Float(d("gamma")), lambda: Float(d("lambda")))
        close(adv, f("advantages"), 1e-5, "advantages")
        close(ret, f("returns"), 1e-5, "returns")
        close(PPOMath.whiten(f("advantages"), lengths: lengths, width: width), f("advantages_white"), 1e-5, "whitened advantages")
        close(PPOMath.whiten(f("rewards"), lengths: lengths, width: width, shiftMean: false), f("rewards_white"), 1e-5, "whitened rewards")
        XCTAssertEqual(
            PPOMath.explainedVariance(values: f("values"), returns: f("returns"), lengths: lengths, width: width), d("explained_variance"),
            accuracy: 1e-5)
    }

    func testPolicyLossAndGradient() {
        let pl = PPOMath.policyLoss(
            newLogprobs: f("new_logprobs"), oldLogprobs: f("logprobs"), advantages: f("advantages_white"), mask: mask, clip: Float(d("eps")))
        XCTAssertEqual(pl.loss, d("pg_loss"), accuracy: 1e-6)
        XCTAssertEqual(pl.clipFraction, d("pg_clipfrac"), accuracy: 1e-12)
        XCTAssertEqual(pl.approxKL, d("approxkl"), accuracy: 1e-6)
        XCTAssertEqual(pl.ratioMean, d("ratio_mean"), accuracy: 1e-6)
        XCTAssertEqual(pl.ratioMax, d("ratio_max"), accuracy: 1e-5)
        close(pl.gradient, f("pg_grad"), 1e-5, "policy gradient")
        XCTAssertGreaterThan(pl.clipFraction, 0, "the fixture exercises clipping")
    }

    func testValueLossAndGradient() {
        let vl = PPOMath.valueLoss(newValues: f("new_values"), oldValues: f("values"), returns: f("returns"), mask: mask, clip: Float(d("eps_v")))
        XCTAssertEqual(vl.loss, d("vf_loss"), accuracy: 1e-5)
        XCTAssertEqual(vl.clipFraction, d("vf_clipfrac"), accuracy: 1e-12)
        close(vl.gradient, f("vf_grad"), 1e-5, "value gradient")
        XCTAssertGreaterThan(vl.clipFraction, 0)
    }

    func testIdenticalPoliciesGiveRatioOneAndNoClipping() {
        let pl = PPOMath.policyLoss(newLogprobs: f("logprobs"), oldLogprobs: f("logprobs"), advantages: f("advantages_white"), mask: mask, clip: 0.2)
        XCTAssertEqual(pl.ratioMean, 1); XCTAssertEqual(pl.ratioMax, 1)
        XCTAssertEqual(pl.approxKL, 0); XCTAssertEqual(pl.clipFraction, 0)
    }

    func testAdaptiveKLController() {
        for row in Self.ref["kl_controller"] as! [[NSNumber]] {
            let v = row.map(\.doubleValue)
            XCTAssertEqual(
                Double(PPOMath.adaptiveKL(beta: Float(v[0]), kl: v[1], target: v[2], samples: Int(v[3]), horizon: v[4])), v[5], accuracy: 1e-7)
        }
    }
}
