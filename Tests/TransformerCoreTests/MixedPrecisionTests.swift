import XCTest

@testable import TransformerCore

/// Training in `--precision bf16`: the gradients follow the single-precision ones as closely as
/// bfloat16 operands allow, the master weights and their updates stay single precision, and a
/// model learns as it does in f32.
final class MixedPrecisionTests: EveryPathTestCase {
    func gradientsAndLoss(_ model: TransformerModel, _ b: TokenBatch, _ targets: [Int32]) -> (loss: Float, grads: [Float]) {
        let acts = Activations(config: model.config, batch: b.batch, length: b.length)
        model.forward(b, acts)
        let loss = LogitHeads.crossEntropy(acts, targets: targets, writeGradient: true)
        model.zeroGradients()
        model.backward(b, acts, fromLogits: true)
        return (loss, (0..<model.gradients.count).map { model.gradients[$0] })
    }

    /// Every product's operands rounded to bfloat16 (relative error 2⁻⁸ each) moves the loss and
    /// the gradients by about a percent, not more; and visibly, so the products really were bf16.
    func testGradientsFollowTheSinglePrecisionOnesOnEveryArchitectureAndPath() {
        Kernels.using(precision: .bf16) {
            forEachArchitecture(Self.architectureConfigs()) { cfg in
                let model = randomModel(cfg, seed: 5)
                var rng = SeededRandom(seed: 6)
                let tokens = randomTokens(3 * 12, vocab: cfg.vocabSize, rng: &rng)
                let b = TokenBatch(tokens: tokens, batch: 3, length: 12)
                let targets = (0..<tokens.count).map { $0 % 12 == 11 ? Int32(-1) : tokens[$0 + 1] }
                let single = Kernels.using(precision: .f32) { gradientsAndLoss(model, b, targets) }
                let half = gradientsAndLoss(model, b, targets)
                XCTAssertEqual(half.loss, single.loss, accuracy: 1e-2 * single.loss, "\(cfg.architecture)")
                var diff = 0.0, norm = 0.0
                for i in 0..<single.grads.count {
                    diff += Double((half.grads[i] - single.grads[i]) * (half.grads[i] - single.grads[i]))
                    norm += Double(single.grads[i] * single.grads[i])
                }
                let relative = (diff / norm).squareRoot()
                XCTAssertLessThan(relative, 5e-2, "\(cfg.architecture): gradients in bf16 against f32")
                XCTAssertGreaterThan(relative, 1e-5, "\(cfg.architecture): bf16 gave the f32 gradients: were the products bf16?")
            }
        }
    }

    /// The batch-memorising run of TrainingTests in both precisions: bf16 learns as f32 does, and
    /// its master weights move by single-precision updates (they do not stay on bfloat16 values).
    func testTrainingLearnsAsInSinglePrecision() {
        func train(_ precision: Precision) -> (first: Float, last: Float, model: TransformerModel) {
            Kernels.using(precision: precision) { memoriseOneBatch() }
        }
        Kernels.using(precision: .bf16) {
            forEachPath {
                let single = train(.f32), half = train(.bf16)
                XCTAssertEqual(half.first, single.first, accuracy: 0.01 * single.first)
                XCTAssertLessThan(half.last, half.first * 0.5, "memorising one batch should halve the loss in bf16 too")
                XCTAssertEqual(half.last, single.last, accuracy: 0.1 * single.last, "bf16 ends where f32 does, within 10%")
                // Master weights: after 60 single-precision updates almost none is a bfloat16 value.
                let p = half.model.parameters
                let onGrid = (0..<p.count).filter { p[$0].bitPattern & 0xFFFF == 0 }.count
                XCTAssertLessThan(Double(onGrid), 0.05 * Double(p.count), "the master weights stay single precision")
            }
        }
    }
}
