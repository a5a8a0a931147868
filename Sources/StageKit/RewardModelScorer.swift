import TransformerCore

/// The run's reward model as the online stages (PPO, GRPO) score their rollouts: the templated
/// prompt's tokens followed by the completion's (ending in EOS when it stopped at one), the
/// sequence's last `n_ctx` tokens read at its last token, and the normalisation the reward model
/// was registered with applied (gain · score + bias).
public final class RewardModelScorer {
    /// The reward model.
    public let model: TransformerModel
    /// The runner that batches its forward passes.
    public let runner: ScalarHeadRunner
    /// The normalisation: score = gain · head + bias.
    public let gain: Float, bias: Float

    /// Scores with `rm`, `rows` sequences per forward pass.
    public init(_ rm: PretrainedModel, rows: Int = 16) {
        model = rm.model
        runner = ScalarHeadRunner(model: rm.model, rows: rows)
        gain = rm.annotations.rewardGain ?? 1
        bias = rm.annotations.rewardBias ?? 0
    }

    /// The normalised score of each (prompt, response) pair.
    public func scores(prompts: [[Int32]], responses: [[Int32]]) -> [Float] {
        let nCtx = model.config.nCtx
        return runner.scores(
            zip(prompts, responses).map { p, r in
                let q = p + r
                return q.count > nCtx ? Array(q.suffix(nCtx)) : q
            }
        ).map { gain * $0 + bias }
    }
}
