import Curves
import Foundation
import RunStore
import TransformerCore

/// `rlhf curves`: reward curves in the terminal, or as SVG.
enum CurvesCommand: Command {
    static let name = "curves"
    static let summary = "Plot a run's curves in the terminal (or --svg FILE)"
    static let help = """
        Usage: rlhf curves [--run NAME[,NAME…]] [--stage ppo|grpo|dpo|sft|reward] [--metrics LIST] [--smooth ALPHA]
                           [--follow] [--svg FILE] [--width N] [--height N]

        One panel per metric, with braille line charts (ASCII when the locale is not UTF-8), axis
        ticks, and the last, min and max values. Several runs overlay in one panel, each in its own
        colour, with a legend; colour is off with NO_COLOR or when stdout is not a terminal. NaN and
        infinite values are skipped (and counted); a metric with no data says so.

        Defaults: --stage ppo when the run has a PPO run, else grpo when it has a GRPO run, else dpo
        when it has a DPO run, else reward. PPO metrics: objective/scores, objective/kl,
        objective/entropy, loss/value, policy/clipfrac, objective/kl_coef. GRPO metrics: reward,
        reward_std, frac_reward_zero_std, completions/mean_length, entropy, and kl when the run
        logged it (β ≠ 0); per source, rewards/NAME/mean. Reward metrics: reward/loss,
        reward/val_accuracy, reward/margin. DPO metrics: loss, rewards/accuracies, rewards/margins,
        rewards/chosen, rewards/rejected, eval_rewards/accuracies (validation, at each epoch's end).
        SFT metrics (--stage sft): loss, mean_token_accuracy, entropy, eval_loss,
        eval_mean_token_accuracy, grad_norm.

        Options:
          --run LIST       run names or paths, comma-separated (default: default)
          --stage S        ppo, grpo, dpo, sft or reward
          --metrics LIST   comma-separated metric names
          --smooth ALPHA   draw an exponential moving average (0 ≤ α < 1) over the raw series
          --follow         redraw as new points land while another process writes the run
                           (read-only snapshots, never blocking the writer); Ctrl-C stops
          --svg FILE       write a standalone SVG instead of drawing in the terminal
          --width N        columns (default: the terminal's, or 80)
          --height N       rows per panel (default: fitted to the terminal, or 10)
        """

    static func run(_ args: [String]) throws {
        let a = try Arguments(args, options: ["--run", "--stage", "--metrics", "--smooth", "--svg", "--width", "--height"], flags: ["--follow"])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        let names = a.list("--run") ?? ["default"]
        guard !names.isEmpty else { throw UsageError("--run needs at least one name") }
        let runs = try names.map { (name: $0, store: try RunStore(folder: RunStore.folder(forRun: $0))) }
        var stage = a.string("--stage")
        if let s = stage, !["ppo", "grpo", "reward", "dpo", "sft"].contains(s) {
            throw UsageError("--stage must be ppo, grpo, dpo, sft or reward, got '\(s)'")
        }
        if stage == nil {
            func has(_ s: String) throws -> Bool { try runs.contains { try !$0.store.stageRuns(stage: s).isEmpty } }
            stage = try has("ppo") ? "ppo" : try has("grpo") ? "grpo" : try has("dpo") ? "dpo" : "reward"
        }
        var metrics = a.list("--metrics") ?? CurveDefaults.metrics(stage: stage!)
        if stage == "grpo" && !a.has("--metrics") {
            // GRPO logs kl only with β ≠ 0; its rewards/NAME/mean are the run's own sources.
            metrics = try CurveDefaults.grpoMetrics(runs.map(\.store))
        }
        var smooth: Double?
        if let s = a.string("--smooth") {
            guard let x = Double(s), x >= 0, x < 1 else { throw UsageError("--smooth expects a number in [0, 1), got '\(s)'") }
            smooth = x
        }
        if let svg = a.string("--svg") {
            let panels = try CurvesView.load(runs: runs, stage: stage!, metrics: metrics)
            let title = "rlhf \(stage!) curves: " + names.joined(separator: ", ")
            try AtomicFile.write(Data(SVGChart.document(title: title, panels: panels, smooth: smooth).utf8), to: URL(fileURLWithPath: svg))
            print("wrote \(svg) (\(panels.count) panels)")
            return
        }
        let tty = isatty(1) == 1
        var ws = winsize()
        let hasSize = tty && ioctl(1, UInt(TIOCGWINSZ), &ws) == 0 && ws.ws_col > 0
        let width = try a.int("--width", range: 30...1000) ?? (hasSize ? Int(ws.ws_col) : 80)
        let rows = hasSize ? Int(ws.ws_row) : 0
        let legend = runs.count > 1 ? 1 : 0
        let fitted = rows > 0 ? max(6, min(16, (rows - 1 - legend) / metrics.count - 1)) : 10
        let height = try a.int("--height", range: 4...200) ?? fitted
        let style = TerminalChart.Style.detect(isTTY: tty)
        func draw() throws -> Int {
            let panels = try CurvesView.load(runs: runs, stage: stage!, metrics: metrics)
            let lines = CurvesView.render(panels, width: width, panelHeight: height, style: style, smooth: smooth)
            if a.flag("--follow") && tty { FileHandle.standardOutput.write(Data("\u{1B}[H\u{1B}[2J".utf8)) }
            print(lines.joined(separator: "\n"))
            return try runs.reduce(0) { n, r in n + (try r.store.metricCount(names: metrics)) }
        }
        var seen = try draw()
        guard a.flag("--follow") else { return }
        while true {
            sleep(1)
            // A count query per run tells whether anything landed since the last draw.
            let now = try runs.reduce(0) { n, r in n + (try r.store.metricCount(names: metrics)) }
            if now != seen { seen = try draw() }
        }
    }
}
