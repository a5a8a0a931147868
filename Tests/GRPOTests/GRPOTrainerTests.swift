import Foundation
import StageKit
import TransformerCore
import XCTest

@testable import GRPO

/// The trainer on a tiny random model with a programmatic reward.
final class GRPOTrainerTests: XCTestCase {
    let cfg = ModelConfig(nLayer: 2, nHead: 2, nEmbd: 32, nCtx: 48, vocabSize: 24)
    let eos: Int32 = 0, pad: Int32 = 1, target: Int32 = 7

    func models(lora rank: Int? = nil) throws -> (policy: TransformerModel, reference: TransformerModel) {
        let policy = TransformerModel(config: cfg)
        policy.initialize(seed: 1)
        for slot in policy.layout.slots where slot.decays { let t = policy.tensor(slot.name); for i in 0..<t.count { t[i] *= 5 } }
        guard let rank else {
            let reference = TransformerModel(config: cfg)
            reference.copyParameters(from: policy)
            return (policy, reference)
        }
        let lc = LoRAConfig(rank: rank, alpha: Float(2 * rank), targets: LoRAConfig.allTargets(cfg.architecture))
        policy.lora = try LoRAAdapters(config: lc, model: cfg, seed: 2)
        return (policy, TransformerModel(sharingWeightsOf: policy))
    }

    /// +1 per occurrence of `target`, as the only source.
    var targetCount: GRPOScorer {
        { _, rs, _ in RewardBreakdown(terms: [("count", 1, rs.map { r in Double(r.filter { $0 == self.target }.count) })]) }
    }

    func trainer(_ s: GRPOConfig, lora: Int? = nil, scorer: GRPOScorer? = nil) throws -> GRPOTrainer {
        let (policy, reference) = try models(lora: lora)
        return GRPOTrainer(
            policy: policy, reference: s.beta == 0 ? nil : reference, stopTokens: [eos], pad: pad, settings: s, scorer: scorer ?? targetCount)
    }

    func prompts(_ n: Int, rng: inout SeededRandom) -> [[Int32]] {
        (0..<n).map { _ in (0..<(2 + rng.int(below: 5))).map { _ in Int32(2 + rng.int(below: 20)) } }
    }

    func settings(_ edit: (inout GRPOConfig) -> Void = { _ in }) -> GRPOConfig {
        var s = GRPOConfig()
        s.batch = 4; s.group = 4; s.responseLength = 10; s.learningRate = 2e-3; s.iterations = 12; s.seed = 5
        edit(&s)
        return s
    }

    /// With μ = 1 the one step's ratios are exactly 1: nothing is clipped, the KL is 0 before the
    /// update, and every metric is there.
    func testFirstStepRatioIsExactlyOne() throws {
        for loss in GRPOLossType.allCases {
            let t = try trainer(
                settings {
                    $0.loss = loss; $0.beta = 0.04
                })
            var rng = SeededRandom(seed: 3)
            let r = try t.step(prompts: prompts(4, rng: &rng))
            XCTAssertEqual(t.lastSteps.count, 1)
            XCTAssertEqual(t.lastSteps[0].ratio, Double(t.lastSteps[0].tokens), "\(loss): every ratio is exactly 1")
            XCTAssertEqual(r.metric("clip_ratio/region_mean"), 0)
            XCTAssertEqual(r.metric("kl")!, 0, accuracy: 1e-6, "policy and reference are the same weights before the update")
            for name in [
                "reward", "reward_std", "frac_reward_zero_std", "rewards/count/mean", "completions/mean_length", "completions/clipped_ratio",
                "entropy", "policy_loss", "grad_norm", "learning_rate",
            ] {
                XCTAssertTrue(r.metric(name)?.isFinite ?? false, "\(loss): \(name)")
            }
        }
    }

    /// With μ = 3 the first step's ratios are exactly 1 and the later ones move; β = 0 logs no KL.
    func testLaterStepsMoveTheRatio() throws {
        let t = try trainer(
            settings {
                $0.numIterations = 3; $0.epsilonHigh = 0.28
            })
        var rng = SeededRandom(seed: 3)
        let r = try t.step(prompts: prompts(4, rng: &rng))
        XCTAssertEqual(t.lastSteps.count, 3)
        XCTAssertEqual(t.lastSteps[0].ratio, Double(t.lastSteps[0].tokens))
        XCTAssertNotEqual(t.lastSteps[2].ratio, Double(t.lastSteps[2].tokens))
        XCTAssertNil(r.metric("kl"), "TRL logs kl only when β ≠ 0")
    }

    /// Equal rewards in a group give it no advantage: with one reward for all, nothing moves.
    func testAConstantRewardLeavesThePolicyAlone() throws {
        let t = try trainer(settings { $0.maxGradNorm = 1e9 }) { _, rs, _ in RewardBreakdown(terms: [("one", 1, rs.map { _ in 1 })]) }
        let before = t.policy.parameters.array
        var rng = SeededRandom(seed: 3)
        let r = try t.step(prompts: prompts(4, rng: &rng))
        XCTAssertEqual(r.metric("frac_reward_zero_std"), 1)
        XCTAssertEqual(r.metric("grad_norm"), 0)
        XCTAssertEqual(t.policy.parameters.array, before, "zero gradients leave AdamW's first step at 0")
    }

    /// With +1 per occurrence of one token as the reward, the reward rises within a few
    /// iterations, for GRPO and for RLOO, fully fine-tuned and with LoRA.
    func testProgrammaticRewardRises() throws {
        for (label, s, lora) in [
            ("grpo", settings(), nil),
            (
                "rloo",
                settings {
                    $0.advantage = .rloo; $0.scaleRewards = .none
                }, nil
            ),
            (
                "dr_grpo",
                settings {
                    $0.loss = .drGRPO; $0.scaleRewards = .none
                }, nil
            ), ("LoRA", settings { $0.learningRate = 2e-2 }, 4),
        ] as [(String, GRPOConfig, Int?)] {
            let t = try trainer(s, lora: lora)
            var rng = SeededRandom(seed: 9)
            var rewards: [Double] = []
            for _ in 0..<s.iterations {
                rewards.append(try t.step(prompts: prompts(s.batch, rng: &rng)).metric("reward")!)
                XCTAssertTrue(t.parametersAreFinite())
            }
            print("\(label): reward \(rewards.map { String(format: "%.2f", $0) })")
            let first = rewards.prefix(3).reduce(0, +) / 3, last = rewards.suffix(3).reduce(0, +) / 3
            XCTAssertGreaterThan(last, first + 0.5, "\(label): the reward rises")
        }
    }

    /// The passes run the completions sorted by length, each padded only to its own longest
    /// prompt and completion: one pass of the whole batch and passes of two give the same
    /// gradients, metrics and updates (the sums' order aside), for a loss whose weights do not
    /// depend on the micro-batch, with μ = 2 so that the old log-probabilities go back to the
    /// right completions.
    func testPassesOfAnyLengthGiveTheSameUpdate() throws {
        for loss in [GRPOLossType.dapo, .grpo] {
            func run(micro: Int) throws -> (GRPOTrainer, GRPOIteration) {
                // AdamW's ε of 1 makes its step about lr·g: sums in another order cannot flip the
                // sign of a near-zero gradient's step.
                let t = try trainer(
                    settings {
                        $0.loss = loss; $0.microBatch = micro; $0.numIterations = 2; $0.adamEps = 1; $0.learningRate = 0.5
                    }
                ) { _, rs, _ in RewardBreakdown(terms: [("length", 1, rs.map { Double($0.count) })]) }
                var rng = SeededRandom(seed: 21)
                return (t, try t.step(prompts: prompts(4, rng: &rng)))
            }
            let (whole, w) = try run(micro: 16), (pairs, p) = try run(micro: 2)
            XCTAssertEqual(w.completions.map(\.response), p.completions.map(\.response), "the same samples")
            let lengths = Set(w.completions.map { $0.response.count })
            XCTAssertGreaterThan(lengths.count, 1, "completions of several lengths, so the passes differ in length")
            for name in ["policy_loss", "entropy", "grad_norm", "clip_ratio/region_mean"] {
                XCTAssertEqual(w.metric(name)!, p.metric(name)!, accuracy: 1e-5 * max(1, abs(w.metric(name)!)), "\(loss): \(name)")
            }
            XCTAssertNotEqual(w.metric("clip_ratio/region_mean"), 0, "\(loss): the second step moved the ratios")
            let before = try models().policy.parameters.array
            let moved = zip(whole.policy.parameters.array, before).map { abs($0 - $1) }.max()!
            XCTAssertGreaterThan(moved, 1e-3)
            let worst = zip(whole.policy.parameters.array, pairs.policy.parameters.array).map { abs($0 - $1) }.max()!
            XCTAssertLessThan(worst, 1e-4 * moved, "\(loss): the same update")
            let g = whole.policy.trainableGradients.array, h = pairs.policy.trainableGradients.array
            let scale = g.map(abs).max()!
            XCTAssertLessThan(zip(g, h).map { abs($0 - $1) }.max()!, 1e-4 * scale, "\(loss): the second step's gradients")
        }
    }

    /// --mask-truncated: completions that reach the limit are out of the loss; with every
    /// completion truncated, the gradient is zero.
    func testMaskTruncated() throws {
        let t = try trainer(
            settings {
                $0.maskTruncated = true; $0.responseLength = 4
            }
        ) { _, rs, _ in
            RewardBreakdown(terms: [("rank", 1, rs.indices.map(Double.init))])
        }
        var rng = SeededRandom(seed: 4)
        let r = try t.step(prompts: prompts(4, rng: &rng))
        let clipped = r.metric("completions/clipped_ratio")!
        XCTAssertGreaterThan(clipped, 0)
        let lengths = r.completions.filter(\.finished).reduce(0) { $0 + $1.response.count }
        XCTAssertEqual(t.lastSteps[0].tokens, lengths, "only finished completions' tokens are in the loss")
    }

    /// The scorer's error ends the iteration before any update.
    func testAScorerErrorChangesNothing() throws {
        struct Broken: Error {}
        let t = try trainer(settings()) { _, _, _ in throw Broken() }
        let before = t.policy.parameters.array
        var rng = SeededRandom(seed: 3)
        XCTAssertThrowsError(try t.step(prompts: prompts(4, rng: &rng)))
        XCTAssertEqual(t.policy.parameters.array, before)
        XCTAssertEqual(t.iteration, 0)
        XCTAssertEqual(t.optimizer.step, 0)
    }
}

/// The settings' command line.
final class GRPOConfigTests: XCTestCase {
    func parse(_ values: [String: String], flags: Set<String> = []) throws -> GRPOConfig {
        try GRPOConfig.parse(GivenOptions(values: values, flags: flags))
    }

    func message(_ values: [String: String]) -> String {
        do {
            _ = try parse(values)
            return ""
        } catch { return "\(error)" }
    }

    func testDefaultsFollowTRL() throws {
        let c = try parse([:])
        XCTAssertEqual(c.group, 8)
        XCTAssertEqual(c.loss, .dapo)
        XCTAssertEqual(c.scaleRewards, .group)
        XCTAssertEqual(c.epsilon, 0.2)
        XCTAssertEqual(c.epsilonHighOrLow, 0.2)
        XCTAssertEqual(c.numIterations, 1)
        XCTAssertEqual(c.beta, 0)
        XCTAssertEqual(c.rewards, [RewardTerm("rm", 1)])
        XCTAssertEqual(c.rowsPerPass, 16)
    }

    func testOptions() throws {
        let c = try parse(
            [
                "--group": "4", "--advantage": "rloo", "--loss": "dr_grpo", "--epsilon-high": "0.28", "--num-iterations": "2", "--beta": "0.04",
                "--reward": "rm:1,cmd:0.5,lexicon,length:-0.1", "--reward-cmd": "python3 r.py", "--batch": "5",
            ], flags: ["--mask-truncated"])
        XCTAssertEqual(c.advantage, .rloo)
        XCTAssertEqual(c.scaleRewards, RewardScaling.none, "RLOO is unscaled unless --scale-rewards says otherwise")
        XCTAssertEqual(c.loss, .drGRPO)
        XCTAssertEqual(c.epsilonHighOrLow, 0.28)
        XCTAssertEqual(c.rewards, [RewardTerm("rm", 1), RewardTerm("cmd", 0.5), RewardTerm("lexicon", 1), RewardTerm("length", -0.1)])
        XCTAssertTrue(c.maskTruncated)
        XCTAssertEqual(c.rowsPerPass, 10, "the largest divisor of 5 × 4 up to 16")
        XCTAssertTrue(c.lexicon.hasPrefix("/"), "made absolute for --resume")
        XCTAssertEqual(try parse(["--advantage": "rloo", "--scale-rewards": "batch"]).scaleRewards, .batch)
        XCTAssertEqual(try parse(["--reward-cmd": "./r"]).rewards, [RewardTerm("cmd", 1)], "--reward-cmd alone is the reward")
        XCTAssertEqual(try parse(["--lora-rank": "4"]).learningRate, 1e-4, accuracy: 1e-9)
    }

    func testBadValuesAreRefusedWithTheirOption() {
        XCTAssertTrue(message(["--group": "1"]).contains("--group"))
        XCTAssertTrue(message(["--loss": "ppo"]).contains("--loss must be"))
        XCTAssertTrue(message(["--advantage": "value"]).contains("--advantage must be"))
        XCTAssertTrue(message(["--reward": "rm:x"]).contains("--reward rm"))
        XCTAssertTrue(message(["--reward": "oracle"]).contains("unknown source 'oracle'"))
        XCTAssertTrue(message(["--reward": "rm,rm:2"]).contains("twice"))
        XCTAssertTrue(message(["--reward": "cmd"]).contains("--reward-cmd"))
        XCTAssertTrue(message(["--reward": "rm", "--reward-cmd": "x"]).contains("does not list cmd"))
        XCTAssertTrue(message(["--micro-batch": "3"]).contains("--micro-batch (3) must divide"))
        XCTAssertTrue(message(["--epsilon": "1.5"]).contains("--epsilon"))
        XCTAssertTrue(message(["--beta": "-1"]).contains("--beta"))
        XCTAssertTrue(message(["--lora-rank": "4", "--lora-dropout": "0.1"]).contains("--lora-dropout"))
        XCTAssertTrue(message(["--frozen-dtype": "bf16"]).contains("--lora-rank"))
    }

    /// The settings are stored with the stage run under their property names (what --resume
    /// reads back): a stored run's JSON, as this version writes it, reads back equal.
    func testStoredSettingsReadBack() throws {
        let stored = """
            {"iterations":5,"batch":2,"group":4,"responseLength":12,"temperature":0.7,"advantage":"rloo","scaleRewards":"none",
            "epsilon":0.2,"epsilonHigh":0.28,"numIterations":2,"loss":"dr_grpo","beta":0.04,"maskTruncated":true,"learningRate":0.0001,
            "maxGradNorm":1,"adamEps":1e-08,"seed":3,"saveEvery":2,"samplesPerIteration":4,
            "rewards":[{"source":"rm","weight":1},{"source":"cmd","weight":0.5}],"rewardCommand":"python3 r.py","rewardTimeout":60,
            "lexicon":"/x/labels/lexicon","targetLength":30}
            """
        let c = try JSONDecoder().decode(GRPOConfig.self, from: Data(stored.utf8))
        var expected = GRPOConfig()
        expected.iterations = 5; expected.batch = 2; expected.group = 4; expected.responseLength = 12; expected.advantage = .rloo
        expected.scaleRewards = .none; expected.epsilonHigh = 0.28; expected.numIterations = 2; expected.loss = .drGRPO; expected.beta = 0.04
        expected.maskTruncated = true; expected.learningRate = 1e-4; expected.seed = 3; expected.saveEvery = 2
        expected.rewards = [RewardTerm("rm", 1), RewardTerm("cmd", 0.5)]; expected.rewardCommand = "python3 r.py"
        expected.lexicon = "/x/labels/lexicon"
        XCTAssertEqual(c, expected)
        XCTAssertEqual(c.precision, .f32, "settings stored before --precision existed read as f32")
        // Every stored key is read back, and what is written now adds only the precision.
        let keys = try XCTUnwrap(try JSONSerialization.jsonObject(with: JSONEncoder().encode(expected)) as? [String: Any]).keys
        XCTAssertEqual(Set(keys), Set((try JSONSerialization.jsonObject(with: Data(stored.utf8)) as! [String: Any]).keys).union(["precision"]))
    }

    /// Every option is in the help, with its default.
    func testHelpListsTheOptions() {
        let help = GRPOConfig.help(column: 27)
        for name in GRPOConfig.valuedOptions + GRPOConfig.switchOptions where name != "--lora-dropout" {
            XCTAssertTrue(help.contains(name), name)
        }
        XCTAssertTrue(help.contains("[dapo]") && help.contains("[rm:1]") && help.contains("[8]"), help)
    }
}
