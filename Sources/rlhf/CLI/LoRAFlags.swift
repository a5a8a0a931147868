import TransformerCore

/// `--lora-rank R [--lora-alpha A] [--lora-targets LIST] [--lora-dropout P]`, the LoRA options
/// of the training commands (train-reward, ppo).
enum LoRAFlags {
    static let options: Set<String> = ["--lora-rank", "--lora-alpha", "--lora-targets", "--lora-dropout", "--frozen-dtype"]

    /// The options' help lines, the descriptions starting at `column` (as the command's own
    /// options do); `dropout` false leaves out --lora-dropout (PPO trains without dropout).
    static func help(column: Int, dropout: Bool = true) -> String {
        var rows: [(String, [String])] = [
            ("--lora-rank R", ["train LoRA adapters of rank R over frozen weights instead of every",
                               "weight; checkpoints hold the adapters (default: full fine-tuning)"]),
            ("--lora-alpha A", ["LoRA alpha: the update is scaled by A/R (default 2·R)"]),
            ("--lora-targets L", ["comma-separated projections to adapt (default: all of them:",
                                  "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj for the Llama",
                                  "family, c_attn,c_proj,c_fc for GPT-2)"]),
        ]
        if dropout { rows.append(("--lora-dropout P", ["dropout on the adapters' input while training (default 0)"])) }
        rows.append(("--frozen-dtype T", ["f32 or bf16: with LoRA, hold the frozen projections in bfloat16,",
                                          "half their memory (default f32)"]))
        let indent = String(repeating: " ", count: column)
        return rows.map { flag, lines in
            ("  " + flag).padding(toLength: column, withPad: " ", startingAt: 0) + lines[0]
                + lines.dropFirst().map { "\n" + indent + $0 }.joined()
        }.joined(separator: "\n")
    }

    /// The configuration the options give, nil without `--lora-rank`. An empty target list
    /// means every projection (resolved once the model's architecture is known).
    static func parse(_ a: Arguments) throws -> LoRAConfig? {
        guard let rank = try a.int("--lora-rank", range: 1...4096) else {
            // (--frozen-dtype says for itself, in frozenDType)
            for o in options.subtracting(["--frozen-dtype"]).sorted() where a.string(o) != nil { throw UsageError("\(o) needs --lora-rank") }
            return nil
        }
        var alpha = Float(2 * rank)
        if let s = a.string("--lora-alpha") {
            guard let x = Float(s), x > 0, x.isFinite else { throw UsageError("--lora-alpha: invalid value '\(s)'") }
            alpha = x
        }
        var dropout: Float = 0
        if let s = a.string("--lora-dropout") {
            guard let x = Float(s), x >= 0, x < 1 else { throw UsageError("--lora-dropout must be in [0, 1), got '\(s)'") }
            dropout = x
        }
        let targets = a.list("--lora-targets") ?? []
        if a.string("--lora-targets") != nil && targets.isEmpty { throw UsageError("--lora-targets needs at least one projection name") }
        return LoRAConfig(rank: rank, alpha: alpha, targets: targets, dropout: dropout)
    }

    /// `--frozen-dtype f32|bf16` (f32 when absent); bf16 only with LoRA, whose base is frozen.
    static func frozenDType(_ a: Arguments) throws -> FrozenDType {
        guard let s = a.string("--frozen-dtype") else { return .f32 }
        guard let t = FrozenDType(rawValue: s) else { throw UsageError("--frozen-dtype must be f32 or bf16, got '\(s)'") }
        if t == .bf16 && a.string("--lora-rank") == nil {
            throw UsageError("--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16")
        }
        return t
    }
}
