import Foundation
import StageKit
import TransformerCore

let commands: [any Command.Type] = [
    DemoCommand.self, InitCommand.self, PromptsCommand.self, GenerateCommand.self, LabelCommand.self, LabelsCommand.self, TrainRewardCommand.self,
    RewardCommand.self, SFTCommand.self, PPOCommand.self, DPOCommand.self, GRPOCommand.self, CompareCommand.self, ExportCommand.self,
    CurvesCommand.self,
    ReportCommand.self,
    MetricsCommand.self, StatusCommand.self,
    PullCommand.self, TokenizeCommand.self, LogprobsCommand.self, SampleCommand.self, TokenizerCommand.self, PretrainCommand.self, BenchCommand.self,
]

let topHelp = """
    rlhf — an RLHF pipeline in Swift: generate, label, SFT, train a reward model, PPO, DPO or GRPO, compare, curves.

    Usage: rlhf <command> [options]
           rlhf <command> --help

    Commands:
    \(commands.map { "  " + $0.name.padding(toLength: 14, withPad: " ", startingAt: 0) + $0.summary }.joined(separator: "\n"))

    Exit status: 0 on success, 1 on failure, 2 on a usage error.
    """

func main() -> Int32 {
    var args = Array(CommandLine.arguments.dropFirst())
    guard let first = args.first else {
        print(topHelp)
        return 2
    }
    if first == "--help" || first == "-h" || first == "help" {
        if first == "help", args.count > 1, let cmd = commands.first(where: { $0.name == args[1] }) {
            print(cmd.help)
        } else {
            print(topHelp)
        }
        return 0
    }
    if first == "--version" { print("rlhf 0.1.0"); return 0 }
    guard let command = commands.first(where: { $0.name == first }) else {
        printError("rlhf: error: unknown command '\(first)'. Run 'rlhf --help' for the list of commands.")
        return 2
    }
    args.removeFirst()
    // A forced kernel path the CPU lacks is a usage error, said before any work starts.
    do { _ = try Kernels.requestedPath() } catch {
        printError("rlhf: error: \(error)")
        return 2
    }
    if args.contains("--help") || args.contains("-h") {
        print(command.help)
        return 0
    }
    do {
        try command.run(args)
        return 0
    } catch  where error is UsageError || error is ConfigError {
        // (A ConfigError is a stage's settings refusing a value given on the command line.)
        printError("rlhf \(command.name): error: \(error). See 'rlhf \(command.name) --help'.")
        return 2
    } catch {
        printError("rlhf \(command.name): error: \(error)")
        return 1
    }
}

setvbuf(stdout, nil, _IOLBF, 0)
// Past a file-size limit (`ulimit -f`) a write fails with EFBIG and the command stops with its
// error, cleaning up, instead of being killed by SIGXFSZ half-way through writing a file.
signal(SIGXFSZ, SIG_IGN)
exit(main())
