import Foundation
import RunStore
import TransformerCore
import XCTest

@testable import DPO

/// The trainer's summed log-probabilities against unpadded forward passes, and its parameter
/// gradient against central finite differences of the loss.
final class DPOTrainerTests: XCTestCase {
    let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 12, nCtx: 24, vocabSize: 13)

    func model(seed: UInt64, scale: Float = 1) -> TransformerModel {
        let m = TransformerModel(config: cfg)
        m.initialize(seed: seed)
        if scale != 1 { for i in 0..<m.layout.count { m.parameters.pointer[i] *= scale } }
        return m
    }

    /// Three rankings with prompts and responses of different lengths (one response empty).
    func examples() -> [PreferenceExample] {
        var rng = SeededRandom(seed: 9)
        func tokens(_ n: Int) -> [Int32] { (0..<n).map { _ in Int32(1 + rng.int(below: cfg.vocabSize - 1)) } }
        return [
            PreferenceExample(
                rankingId: 1, promptId: 1, completionIds: [1, 2, 3], prompt: tokens(5), responses: [tokens(4), tokens(7), tokens(2)],
                pairs: [.init(chosen: 0, rejected: 1), .init(chosen: 2, rejected: 1), .init(chosen: 0, rejected: 2)]),
            PreferenceExample(
                rankingId: 2, promptId: 2, completionIds: [4, 5], prompt: tokens(3), responses: [tokens(6), tokens(1)],
                pairs: [.init(chosen: 1, rejected: 0)]),
            PreferenceExample(
                rankingId: 3, promptId: 3, completionIds: [6, 7], prompt: tokens(8), responses: [tokens(3), []],
                pairs: [.init(chosen: 0, rejected: 1)]),
        ]
    }

    /// log p(response | prompt) from one unpadded forward pass of prompt + response.
    func unpaddedLogProb(_ m: TransformerModel, prompt: [Int32], response: [Int32]) -> Double {
        let seq = prompt + response
        let acts = Activations(config: cfg, batch: 1, length: seq.count)
        m.forward(TokenBatch(tokens: seq, batch: 1, length: seq.count), acts)
        var targets = [Int32](repeating: -1, count: seq.count)
        for j in 0..<response.count { targets[prompt.count + j - 1] = response[j] }
        return LogitHeads.targetLogProbs(acts, targets: targets).reduce(0.0) { $0 + Double($1) }
    }

    func testBatchedLogProbSumsEqualUnpaddedForwards() {
        let m = model(seed: 1, scale: 4)
        let exs = examples()
        for rows in [1, 3, 16] {
            let trainer = DPOTrainer(policy: m, objective: DPOObjective(), rows: rows, pad: 0)
            let sums = trainer.logProbSums(m, exs)
            for (ex, s) in zip(exs, sums) {
                for (resp, v) in zip(ex.responses, s) {
                    XCTAssertEqual(v, unpaddedLogProb(m, prompt: ex.prompt, response: resp), accuracy: 1e-4, "rows \(rows)")
                }
            }
            XCTAssertEqual(sums[2][1], 0, "an empty response has log-probability 0")
        }
    }

    func testParameterGradientMatchesFiniteDifferences() {
        let policy = model(seed: 2, scale: 4), reference = model(seed: 3, scale: 4)
        let exs = examples()
        for kind in [DPOLossKind.sigmoid, .ipo] {
            let objective = DPOObjective(beta: 0.5, kind: kind, labelSmoothing: kind == .sigmoid ? 0.1 : 0)
            let trainer = DPOTrainer(policy: policy, objective: objective, rows: 4, pad: 0)
            let ref = trainer.logProbSums(reference, exs)
            let stats = trainer.accumulateGradients(exs, reference: ref)
            XCTAssertEqual(stats.loss, trainer.evaluate(exs, reference: ref).loss, accuracy: 1e-5, "the step's loss is the evaluated loss")
            var rng = SeededRandom(seed: 4)
            var checked = 0
            for slot in policy.layout.slots {
                let grad = Array(policy.gradient(slot.name))
                var picks = [grad.indices.max { abs(grad[$0]) < abs(grad[$1]) }!]
                picks.append(rng.int(below: slot.count))
                for i in picks {
                    let p = policy.parameters.pointer + slot.offset + i
                    let saved = p.pointee, h: Float = 1e-2
                    p.pointee = saved + h; let up = trainer.evaluate(exs, reference: ref).loss
                    p.pointee = saved - h; let down = trainer.evaluate(exs, reference: ref).loss
                    p.pointee = saved
                    let numeric = (up - down) / (2 * Double(h)), a = Double(grad[i])
                    XCTAssertLessThanOrEqual(
                        abs(numeric - a), 2e-3 + 2e-2 * max(abs(numeric), abs(a)),
                        "\(kind) \(slot.name)[\(i)]: analytic \(a), numeric \(numeric)")
                    checked += 1
                }
            }
            XCTAssertEqual(checked, 2 * policy.layout.slots.count)
        }
    }

    func testPassesKeepRankingsWholeAndFitTheContext() {
        let trainer = DPOTrainer(policy: model(seed: 1), objective: DPOObjective(), rows: 3, pad: 0)
        let passes = trainer.passes(examples(), nCtx: cfg.nCtx)
        XCTAssertEqual(passes.map { $0.map(\.rankingId) }, [[1], [2], [3]])
        XCTAssertEqual(trainer.passes(examples(), nCtx: 14).map { $0.count }, [1, 1, 1])
        let wide = DPOTrainer(policy: model(seed: 1), objective: DPOObjective(), rows: 16, pad: 0)
        XCTAssertEqual(wide.passes(examples(), nCtx: cfg.nCtx).map { $0.count }, [3])
        XCTAssertEqual(
            wide.passes(examples(), nCtx: 14).map { $0.count }, [2, 1], "prompts 5 and 3 with responses up to 7 fit 14; the prompt of 8 would make 15"
        )
    }

    func testFitCutsThePromptStartThenTheResponseEnd() {
        let p: [Int32] = [1, 2, 3, 4, 5, 6]
        XCTAssertEqual(DPOData.fit(prompt: p, responses: [[7, 8]], nCtx: 8).prompt, p)
        let a = DPOData.fit(prompt: p, responses: [[7, 8, 9], [7]], nCtx: 6)
        XCTAssertEqual(a.prompt, [4, 5, 6]); XCTAssertEqual(a.responses, [[7, 8, 9], [7]])
        let b = DPOData.fit(prompt: p, responses: [[7, 8, 9, 10, 11, 12, 13]], nCtx: 5)
        XCTAssertEqual(b.prompt, [6]); XCTAssertEqual(b.responses, [[7, 8, 9, 10]])
    }
}
