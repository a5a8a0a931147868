import Foundation
import XCTest

@testable import TransformerCore

/// Compares the Swift core with Fixtures/golden_tiny_gpt2.json, produced by the independent
/// numpy + autograd reference in Fixtures/make_golden.py.
final class GoldenTests: EveryPathTestCase {
    struct Golden {
        let json: [String: Any]
        func floats(_ key: String) -> [Float] { (json[key] as! [NSNumber]).map { $0.floatValue } }
        func ints(_ key: String) -> [Int32] { (json[key] as! [NSNumber]).map { Int32($0.doubleValue) } }
        func tensors(_ key: String, in dict: [String: Any]? = nil) -> [String: [Float]] {
            let d = (dict ?? json)[key] as! [String: [NSNumber]]
            return d.mapValues { $0.map { $0.floatValue } }
        }
    }

    static let golden: Golden = {
        let url = Bundle.module.url(forResource: "golden_tiny_gpt2", withExtension: "json", subdirectory: "Fixtures")!
        let data = try! Data(contentsOf: url)
        return Golden(json: try! JSONSerialization.jsonObject(with: data) as! [String: Any])
    }()

    func makeModel(scalarHead: Bool) -> (TransformerModel, TokenBatch) {
        let g = Self.golden
        let cfg = try! JSONDecoder().decode(ModelConfig.self, from: JSONSerialization.data(withJSONObject: g.json["config"]!))
        let model = TransformerModel(config: cfg, scalarHead: scalarHead)
        for (name, values) in g.tensors("params") {
            guard model.layout[name] != nil else { continue }
            let t = model.tensor(name)
            XCTAssertEqual(t.count, values.count, name)
            for i in 0..<values.count { t[i] = values[i] }
        }
        let b = g.json["batch"] as! Int, t = g.json["length"] as! Int
        var batch = TokenBatch(tokens: g.ints("tokens"), batch: b, length: t)
        batch.mask = g.ints("mask").map { UInt8($0) }
        batch.positions = g.ints("positions")
        return (model, batch)
    }

    /// Max |a−b| relative to the largest reference magnitude (at least 1).
    func assertClose(_ got: [Float], _ want: [Float], tol: Float, _ what: String, line: UInt = #line) {
        let scale = max(1, want.map { abs($0) }.max() ?? 1)
        let d = maxAbsDiff(got, want)
        XCTAssertLessThanOrEqual(d / scale, tol, "\(what): max abs diff \(d) (reference scale \(scale))", line: line)
    }

    func testLogitsAndLoss() {
        forEachPath {
            let (model, batch) = makeModel(scalarHead: false)
            let acts = Activations(config: model.config, batch: batch.batch, length: batch.length)
            model.forward(batch, acts)
            let v = model.config.vocabSize
            let want = Self.golden.floats("logits")
            var got: [Float] = [], ref: [Float] = []
            for i in 0..<batch.batch * batch.length where batch.mask[i] == 1 {
                got += Array(UnsafeBufferPointer(start: acts.logits.pointer + i * v, count: v))
                ref += Array(want[i * v..<(i + 1) * v])
            }
            XCTAssertLessThanOrEqual(maxAbsDiff(got, ref), 1e-4, "logits at real positions")
            let loss = LogitHeads.crossEntropy(acts, targets: Self.golden.ints("targets"), writeGradient: false)
            XCTAssertEqual(Double(loss), (Self.golden.json["loss"] as! NSNumber).doubleValue, accuracy: 1e-5)
        }
    }

    func testLossGradients() {
        forEachPath {
            let (model, batch) = makeModel(scalarHead: false)
            let acts = Activations(config: model.config, batch: batch.batch, length: batch.length)
            model.forward(batch, acts)
            _ = LogitHeads.crossEntropy(acts, targets: Self.golden.ints("targets"), writeGradient: true)
            model.zeroGradients()
            model.backward(batch, acts, fromLogits: true)
            for (name, want) in Self.golden.tensors("grads") {
                assertClose(Array(model.gradient(name)), want, tol: 1e-4, "d loss / d \(name)")
            }
        }
    }

    func testScalarHeadValuesAndGradients() {
        forEachPath {
            let (model, batch) = makeModel(scalarHead: true)
            let acts = Activations(config: model.config, batch: batch.batch, length: batch.length)
            model.forward(batch, acts, computeLogits: false)
            let want = Self.golden.floats("values")
            let real = (0..<want.count).filter { batch.mask[$0] == 1 }
            XCTAssertLessThanOrEqual(maxAbsDiff(real.map { acts.values[$0] }, real.map { want[$0] }), 1e-4)
            // The reward model's reading: the value at the last real token of each sequence.
            let last = model.lastTokenValues(batch, acts)
            for b in 0..<batch.batch {
                XCTAssertEqual(last[b], want[b * batch.length + batch.length - 1], accuracy: 1e-4)
            }
            model.zeroGradients()
            model.backward(batch, acts, fromLogits: false, dValues: Self.golden.floats("value_coef"))
            for (name, want) in Self.golden.tensors("value_grads") {
                assertClose(Array(model.gradient(name)), want, tol: 1e-4, "d values / d \(name)")
            }
        }
    }

    func testLogProbEntropyAndTheirGradients() {
        forEachPath {
            let g = Self.golden
            let (model, batch) = makeModel(scalarHead: false)
            let acts = Activations(config: model.config, batch: batch.batch, length: batch.length)
            model.forward(batch, acts)
            let tau = (g.json["temperature"] as! NSNumber).floatValue
            let targets = g.ints("targets")
            let logp = LogitHeads.targetLogProbs(acts, targets: targets, temperature: tau)
            XCTAssertLessThanOrEqual(maxAbsDiff(logp, g.floats("logp")), 1e-4)
            let ent = LogitHeads.entropies(acts, temperature: tau)
            let real = (0..<ent.count).filter { batch.mask[$0] == 1 }
            XCTAssertLessThanOrEqual(maxAbsDiff(real.map { ent[$0] }, real.map { g.floats("entropy")[$0] }), 1e-4)
            // The one-pass form gives the same numbers as the two separate passes.
            let both = LogitHeads.targetLogProbsAndEntropies(acts, targets: targets, temperature: tau)
            XCTAssertEqual(both.logProbs, logp)
            XCTAssertEqual(both.entropies, ent)
            let logp2 = LogitHeads.logitGradient(
                acts, targets: targets, temperature: tau,
                dLogProb: g.floats("coef_logp"), dEntropy: g.floats("coef_ent"))
            XCTAssertLessThanOrEqual(maxAbsDiff(logp2, logp), 1e-6)
            model.zeroGradients()
            model.backward(batch, acts, fromLogits: true)
            for (name, want) in g.tensors("policy_grads") {
                assertClose(Array(model.gradient(name)), want, tol: 1e-4, "d (Σa·logp + Σe·H) / d \(name)")
            }
        }
    }

    func testAdamWTwoSteps() {
        forEachPath {
            let g = Self.golden
            let (model, _) = makeModel(scalarHead: false)
            let ad = g.json["adamw"] as! [String: Any]
            let cfg = AdamWConfig(
                learningRate: (ad["lr"] as! NSNumber).floatValue, beta1: (ad["beta1"] as! NSNumber).floatValue,
                beta2: (ad["beta2"] as! NSNumber).floatValue, eps: (ad["eps"] as! NSNumber).floatValue,
                weightDecay: (ad["weight_decay"] as! NSNumber).floatValue)
            let opt = AdamW(layout: model.layout, config: cfg)
            for grads in [g.tensors("grads"), g.tensors("grads2", in: ad)] {
                for (name, values) in grads { let t = model.gradient(name); for i in 0..<values.count { t[i] = values[i] } }
                opt.update(params: model.parameters, grads: model.gradients, lr: cfg.learningRate)
            }
            XCTAssertEqual(opt.step, 2)
            for (name, want) in g.tensors("params_after", in: ad) {
                XCTAssertLessThanOrEqual(maxAbsDiff(Array(model.tensor(name)), want), 2e-6, "AdamW result for \(name)")
            }
        }
    }
}
