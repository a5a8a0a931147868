import Foundation
import TransformerCore
import XCTest

@testable import PPO

final class PPOTrainerTests: XCTestCase {
    let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 32, nCtx: 48, vocabSize: 24)
    let eos: Int32 = 0, pad: Int32 = 1, target: Int32 = 7

    func trainer(_ s: PPOConfig, scorer: @escaping ([[Int32]], [[Int32]]) -> [Float]) -> PPOTrainer {
        let policy = TransformerModel(config: cfg), reference = TransformerModel(config: cfg), value = TransformerModel(config: cfg, scalarHead: true)
        policy.initialize(seed: 1)
        for slot in policy.layout.slots where slot.decays { let t = policy.tensor(slot.name); for i in 0..<t.count { t[i] *= 5 } }
        reference.copyParameters(from: policy)
        value.copyParameters(from: policy)
        return PPOTrainer(policy: policy, reference: reference, value: value, eos: eos, pad: pad, settings: s, scorer: scorer)
    }

    func prompts(_ n: Int, rng: inout SeededRandom) -> [[Int32]] {
        (0..<n).map { _ in (0..<(2 + rng.int(below: 5))).map { _ in Int32(2 + rng.int(below: 20)) } }
    }

    /// Running the models' passes at once, one per core (rollout and updates), changes nothing:
    /// after two iterations both models' parameters are bit-for-bit those of running them one
    /// after another.
    func testConcurrentModelUpdatesMatchSequential() {
        var s = PPOConfig()
        s.batch = 8; s.minibatches = 2; s.ppoEpochs = 2; s.responseLength = 10; s.learningRate = 1e-3; s.iterations = 2
        var results: [([Float], [Float])] = []
        for isolate in [false, true] {
            let t = trainer(s) { _, rs in rs.map { Float($0.filter { $0 == self.target }.count) } }
            t.isolateModelPassesOverride = isolate
            var rng = SeededRandom(seed: 3)
            let ps = prompts(8, rng: &rng)
            for _ in 0..<2 { _ = t.step(prompts: ps) }
            results.append((t.policy.parameters.array, t.value.parameters.array))
        }
        XCTAssertNotEqual(results[0].0, trainer(s) { _, _ in [] }.policy.parameters.array, "the updates changed the policy")
        XCTAssertEqual(results[0].0, results[1].0)
        XCTAssertEqual(results[0].1, results[1].1)
    }

    /// The first minibatch of the first epoch sees the rollout's own policy: ratio 1, no KL, no clipping.
    func testFirstMinibatchHasRatioOne() {
        var s = PPOConfig()
        s.batch = 8; s.minibatches = 2; s.ppoEpochs = 2; s.responseLength = 10; s.learningRate = 1e-3
        let t = trainer(s) { _, rs in rs.map { Float($0.count) / 10 } }
        var rng = SeededRandom(seed: 3)
        let r = t.step(prompts: prompts(8, rng: &rng))
        XCTAssertEqual(r.metric("policy/first_ratio_mean")!, 1, accuracy: 1e-6)
        XCTAssertEqual(r.metric("policy/first_approxkl")!, 0, accuracy: 1e-7)
        XCTAssertEqual(r.metric("policy/first_clipfrac"), 0)
        XCTAssertEqual(r.metric("objective/kl")!, 0, accuracy: 1e-4, "policy and reference are the same model before the first update")
        for name in ["objective/entropy", "objective/scores", "loss/policy", "loss/value", "val/explained_variance", "response/length_mean"] {
            XCTAssertTrue(r.metric(name)?.isFinite ?? false, name)
        }
        XCTAssertEqual(t.iteration, 1)
    }

    /// The programmatic-reward setting: +1 per occurrence of `target`, 12 iterations of 32 prompts.
    func targetSettings(learningRate: Float, klCoef: Float) -> PPOConfig {
        var s = PPOConfig()
        s.batch = 32; s.minibatches = 4; s.responseLength = 12; s.learningRate = learningRate; s.klCoef = klCoef; s.missingEOSPenalty = nil
        s.iterations = 12; s.seed = 5
        return s
    }

    var targetCount: ([[Int32]], [[Int32]]) -> [Float] { { _, rs in rs.map { r in Float(r.filter { $0 == self.target }.count) } } }

    /// Runs every iteration of `t`'s settings; the scores and KLs, printed under `label`.
    func iterate(_ t: PPOTrainer, _ label: String) -> (scores: [Double], kls: [Double]) {
        var rng = SeededRandom(seed: 9)
        var scores: [Double] = [], kls: [Double] = []
        for _ in 0..<t.settings.iterations {
            let r = t.step(prompts: prompts(t.settings.batch, rng: &rng))
            scores.append(r.metric("objective/scores")!); kls.append(r.metric("objective/kl")!)
            XCTAssertTrue(t.parametersAreFinite())
        }
        print("\(label): scores \(scores.map { String(format: "%.2f", $0) }), KL \(kls.map { String(format: "%.2f", $0) })")
        return (scores, kls)
    }

    func run(klCoef: Float) -> (scores: [Double], kls: [Double]) {
        iterate(trainer(targetSettings(learningRate: 2e-3, klCoef: klCoef), scorer: targetCount), "programmatic reward, β \(klCoef)")
    }

    /// With +1 per occurrence of one token as the score, the score rises within a few iterations
    /// while the KL to the reference stays bounded, and the penalty is what bounds it.
    func testProgrammaticRewardRisesWithBoundedKL() {
        let penalised = run(klCoef: 0.3), free = run(klCoef: 0)
        let first = penalised.scores.prefix(2).reduce(0, +) / 2, last = penalised.scores.suffix(3).reduce(0, +) / 3
        XCTAssertGreaterThan(last, first + 1, "the score rises")
        XCTAssertLessThan(penalised.kls.max()!, 12, "the KL stays bounded")
        XCTAssertLessThan(
            penalised.kls.suffix(3).reduce(0, +), free.kls.suffix(3).reduce(0, +), "the KL penalty holds the policy nearer the reference")
    }

    func testAdaptiveControllerMovesBeta() {
        var s = PPOConfig()
        s.batch = 8; s.minibatches = 2; s.ppoEpochs = 1; s.responseLength = 8; s.targetKL = 1e-6; s.klHorizon = 100
        let t = trainer(s) { _, rs in rs.map { _ in 0 } }
        var rng = SeededRandom(seed: 1)
        for _ in 0..<3 {
            let before = t.beta
            let r = t.step(prompts: prompts(8, rng: &rng))
            XCTAssertEqual(r.metric("objective/kl_coef"), Double(before), "the iteration used the β it started with")
            XCTAssertEqual(t.beta, PPOMath.adaptiveKL(beta: before, kl: r.metric("objective/kl")!, target: 1e-6, samples: 8, horizon: 100))
            XCTAssertNotEqual(t.beta, before)
        }
    }
}

extension PPOTrainerTests {
    /// A NaN score poisons the losses, which is what PPOStage checks before logging or saving.
    func testNaNIsDetected() {
        var s = PPOConfig()
        s.batch = 4; s.minibatches = 1; s.ppoEpochs = 1; s.responseLength = 6; s.missingEOSPenalty = nil
        let t = trainer(s) { _, rs in rs.map { _ in .nan } }
        var rng = SeededRandom(seed: 2)
        let r = t.step(prompts: prompts(4, rng: &rng))
        XCTAssertFalse(r.metric("loss/total")!.isFinite && t.parametersAreFinite())
        t.policy.tensor("wte.weight")[0] = .infinity
        XCTAssertFalse(t.parametersAreFinite())
    }
}

/// PPO with LoRA: the policy's adapters over frozen weights that the reference shares, the value
/// model's adapters and head over a reward trunk it shares.
extension PPOTrainerTests {
    func loraTrainer(_ s: PPOConfig, rank: Int = 4, scorer: @escaping ([[Int32]], [[Int32]]) -> [Float]) throws -> (
        PPOTrainer, rewardTrunk: TransformerModel
    ) {
        let policy = TransformerModel(config: cfg), trunk = TransformerModel(config: cfg, scalarHead: true)
        policy.initialize(seed: 1)
        for slot in policy.layout.slots where slot.decays { let t = policy.tensor(slot.name); for i in 0..<t.count { t[i] *= 5 } }
        trunk.copyParameters(from: policy)
        let lc = LoRAConfig(rank: rank, alpha: Float(2 * rank), targets: LoRAConfig.allTargets(cfg.architecture))
        policy.lora = try LoRAAdapters(config: lc, model: cfg, seed: 2)
        let value = TransformerModel(sharingWeightsOf: trunk)
        value.lora = try LoRAAdapters(config: lc, model: cfg, scalarHead: true, seed: 3)
        let t = PPOTrainer(
            policy: policy, reference: TransformerModel(sharingWeightsOf: policy), value: value, eos: eos, pad: pad,
            settings: s, scorer: scorer)
        return (t, trunk)
    }

    /// The score rises through the adapters alone: the shared weights are never written, the
    /// reference still computes the starting policy, and the trainer holds one copy of them.
    func testLoRARaisesTheScoreOverFrozenSharedWeights() throws {
        let (t, trunk) = try loraTrainer(targetSettings(learningRate: 1e-2, klCoef: 0.3), scorer: targetCount)
        let weights = t.policy.parameters.array, trunkWeights = trunk.parameters.array
        let (scores, kls) = iterate(t, "LoRA PPO")
        XCTAssertGreaterThan(scores.suffix(3).reduce(0, +) / 3, scores.prefix(2).reduce(0, +) / 2 + 1, "the score rises")
        XCTAssertLessThan(kls.max()!, 12, "the KL stays bounded")
        XCTAssertEqual(t.policy.parameters.array, weights, "the policy's weights are frozen")
        XCTAssertEqual(trunk.parameters.array, trunkWeights, "the reward trunk is frozen")
        XCTAssertTrue(t.reference.parameters === t.policy.parameters && t.value.parameters === trunk.parameters, "one copy each")
        // The reference is the starting policy: the policy with its adapters off.
        var r2 = SeededRandom(seed: 4)
        let b = TokenBatch(leftPadding: prompts(3, rng: &r2), pad: pad)
        let acts = Activations(config: cfg, batch: b.batch, length: b.length)
        t.reference.forward(b, acts)
        let ref = acts.logits.array
        t.policy.forward(b, acts)
        XCTAssertGreaterThan(zip(acts.logits.array, ref).map { abs($0 - $1) }.max()!, 1e-3, "the adapters moved the policy")
        t.policy.lora!.enabled = false
        t.policy.forward(b, acts)
        XCTAssertEqual(acts.logits.array, ref)
        t.policy.lora!.enabled = true
        let memory = Dictionary(uniqueKeysWithValues: t.memoryBreakdown)
        XCTAssertEqual(memory["policy and reference (one base), value parameters"], 4 * t.policy.layout.count)
        XCTAssertEqual(memory["AdamW moments (policy, value)"], 4 * 2 * (t.policy.lora!.parameters.count + t.value.lora!.parameters.count))
    }

    /// With LoRA too, running the models' passes at once (policy beside the reference that
    /// shares its weights) gives the adapters of running them one after another, bit for bit.
    func testLoRAConcurrentPassesMatchSequential() throws {
        var s = PPOConfig()
        s.batch = 8; s.minibatches = 2; s.ppoEpochs = 2; s.responseLength = 10; s.learningRate = 1e-2; s.iterations = 2
        var results: [([Float], [Float])] = []
        for isolate in [false, true] {
            let (t, _) = try loraTrainer(s) { _, rs in rs.map { Float($0.filter { $0 == self.target }.count) } }
            t.isolateModelPassesOverride = isolate
            var rng = SeededRandom(seed: 3)
            let ps = prompts(8, rng: &rng)
            for _ in 0..<2 { _ = t.step(prompts: ps) }
            results.append((t.policy.lora!.parameters.array, t.value.lora!.parameters.array))
        }
        XCTAssertEqual(results[0].0, results[1].0)
        XCTAssertEqual(results[0].1, results[1].1)
    }
}
