import RunStore
import StageKit

/// The command line of a stage whose settings are a `StageConfig`: the config's own options plus
/// the command's (`--run`, `--resume`, `--json`, …).
struct StageArguments<Config: StageConfig> {
    let arguments: Arguments
    let config: Config

    /// Parses `args`, accepting the config's options and `options`/`flags` of the command's own.
    /// A bad value throws a `ConfigError`, which `main` reports as a usage error.
    init(_ args: [String], options: Set<String> = ["--run"], flags: Set<String> = []) throws {
        arguments = try Arguments(args, options: options.union(Config.valuedOptions), flags: flags.union(Config.switchOptions))
        if let p = arguments.positional.first { throw UsageError("unexpected argument '\(p)'") }
        config = try Config.parse(GivenOptions(values: arguments.options, flags: arguments.flags))
    }

    /// Opens the run `--run` names for the stage, with Ctrl-C asking the stage to stop at its next
    /// safe point instead of killing it.
    func startRun() throws -> RunStore {
        let store = try openRun(arguments)
        Interrupt.install()
        return store
    }

    /// With `--resume`, says that the settings given are ignored (the run keeps its own).
    func noteIgnoredSettings() {
        guard arguments.flag("--resume"), Config.options.contains(where: { o in (o.valued + o.switches).contains { arguments.has($0) } }) else {
            return
        }
        printError("note: --resume continues with the settings the run was started with; other options are ignored")
    }
}

extension StageConfig {
    /// The options section of a run-scoped stage command's help: `--run`, the config's options
    /// with their defaults, then the command's own options `then`.
    static func optionsHelp(column: Int, then own: [(label: String, help: [String])] = []) -> String {
        "Options (defaults in brackets):\n" + HelpRows.render([("--run NAME", ["the run [default]"])], column: column) + "\n"
            + help(column: column) + (own.isEmpty ? "" : "\n" + HelpRows.render(own, column: column))
    }
}
