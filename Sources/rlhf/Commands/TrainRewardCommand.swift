import Foundation
import RewardTraining
import RunStore
import StageKit
import TransformerCore

/// `rlhf train-reward`: a reward model from the run's comparisons.
enum TrainRewardCommand: Command {
    static let name = "train-reward"
    static let summary = "Train a reward model on the run's pairwise comparisons"
    static let help = """
        Usage: rlhf train-reward [--run NAME] [--epochs N] [--lr X] [--batch N] [--seed S] [--val-fraction F]
                                 [--margin M] [--init ID|DIR] [--lora-rank R [--lora-alpha A] [--lora-targets L]]
                                 [--with-judgments]

        Trains a reward model as InstructGPT and lm-human-preferences do: the run's base model (or
        --init: a model id of the run or a model folder) with a scalar head, drawn from
        N(0, 1/sqrt(n_embd+1)) with a zero bias, read at the last token of prompt + completion (the
        EOS token when there is one). The loss is Bradley–Terry, -log sigmoid(r_chosen - r_rejected
        - margin), averaged over the C(K,2) pairs of a ranking, which stay together in one batch
        element so every ranking weighs the same. Rankings are split into train and validation by
        prompt (seeded); AdamW with linear learning-rate decay and gradient clipping.

        After training, the epoch with the best validation accuracy is normalised with a gain and a
        bias so that the base policy's completions of the train prompts score mean 0 and standard
        deviation 1, saved under checkpoints/ and registered with role reward. Metrics per step
        (reward/loss, reward/margin, reward/accuracy, lr) and per epoch (reward/val_loss,
        reward/val_accuracy, reward/val_margin) go to the metrics table. Ctrl-C stops cleanly and
        registers nothing; a rerun starts afresh.

        With --lora-rank, the starting model's weights stay frozen and only low-rank adapters on its
        projections and the scalar head train (LoRA, as PEFT does it: A Kaiming-uniform, B zero, the
        head as PEFT's modules_to_save). The checkpoint holds the adapters and the head, PEFT's files,
        and is registered over the model it adapts. LoRA usually wants a larger learning rate than
        full fine-tuning: without --lr it is \(Int(RewardConfig.loraLearningRate / RewardConfig().learningRate)) times the default.

        With --with-judgments, human judgments of two policies (rlhf compare --judge human) are
        comparisons too: each current judgment that prefers one side (not a tie, not a skip) adds a
        ranking of two, the completion the annotator preferred chosen, whichever side it was shown on.
        Judgments are made on eval prompts; those prompts then take part in training (or in the
        reward model's validation split) like any other.

        \(RewardConfig.optionsHelp(column: 22))
        """

    static func run(_ args: [String]) throws {
        let parsed = try StageArguments<RewardConfig>(args), o = parsed.config, store = try parsed.startRun()
        let bar = LazyProgressBar("train-reward", unit: "steps")
        let r = try RewardStage.run(
            store: store, options: o,
            progress: { step, total, loss in
                bar.update(step, of: total, note: String(format: "loss %.4f", loss))
            },
            epochDone: { e in
                bar.finish()
                printError(
                    String(
                        format: "epoch %d: train loss %.4f, validation loss %.4f, accuracy %.1f%%, margin %.3f",
                        e.epoch, e.trainLoss, e.validationLoss, e.validationAccuracy * 100, e.validationMargin))
            }, shouldStop: { Interrupt.requested })
        bar.finish()
        print(
            "trained on \(r.trainRankings) rankings (\(r.trainPairs) pairs), validated on \(r.validationRankings) (\(r.validationPairs) pairs, \(r.validationPrompts.count) prompts)"
                + (o.withJudgments == true ? "; \(r.judgments) of these rankings are human judgments" : "")
        )
        if r.interrupted { throw RuntimeError("interrupted; no reward model was registered, and a rerun starts afresh") }
        if let best = r.best, let m = r.model {
            print(
                String(
                    format: "best epoch %d: validation accuracy %.1f%%; normalised on %d samples (gain %.4g, bias %.4g)",
                    best.epoch, best.validationAccuracy * 100, r.normalizationSamples, r.gain, r.bias))
            print("registered reward model #\(m.id) at \(m.path)" + (m.baseId.map { " (LoRA adapters over model #\($0))" } ?? ""))
        }
    }
}
