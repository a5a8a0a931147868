import TransformerCore

/// `--lora-rank R [--lora-alpha A] [--lora-targets LIST] [--lora-dropout P] [--frozen-dtype T]`,
/// the LoRA options of the training stages, as one group of a stage's option table.
public enum LoRAOptions {
    /// The names of the group's options.
    public static let names: Set<String> = ["--lora-rank", "--lora-alpha", "--lora-targets", "--lora-dropout", "--frozen-dtype"]

    /// How much faster adapters learn than full fine-tuning: without --lr, a stage trained with
    /// LoRA uses this many times its full learning rate.
    public static let learningRateFactor: Float = 10

    /// The group for a config whose adapters are `lora` and whose frozen weights' type is set by
    /// `setFrozen`. `dropout` false leaves out --lora-dropout (PPO trains without dropout).
    public static func group<C>(
        _ lora: WritableKeyPath<C, LoRAConfig?>, dropout: Bool = true,
        setFrozen: @escaping (inout C, FrozenDType) -> Void
    ) -> ConfigOption<C> {
        var rows: [(label: String, help: [String])] = [
            (
                "--lora-rank R",
                [
                    "train LoRA adapters of rank R over frozen weights instead of every",
                    "weight; checkpoints hold the adapters (default: full fine-tuning)",
                ]
            ),
            ("--lora-alpha A", ["LoRA alpha: the update is scaled by A/R (default 2·R)"]),
            (
                "--lora-targets L",
                [
                    "comma-separated projections to adapt (default: all of them:",
                    "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj for the Llama",
                    "family, c_attn,c_proj,c_fc for GPT-2)",
                ]
            ),
        ]
        if dropout { rows.append(("--lora-dropout P", ["dropout on the adapters' input while training (default 0)"])) }
        rows.append(
            (
                "--frozen-dtype T",
                [
                    "f32 or bf16: with LoRA, hold the frozen projections in bfloat16,",
                    "half their memory (default f32)",
                ]
            ))
        // --lora-dropout is accepted even where it is not listed, so that the stage's validation
        // can say why it does not apply.
        return ConfigOption(rows: rows, valued: names.sorted()) { c, given in
            c[keyPath: lora] = try parse(given)
            setFrozen(&c, try frozenDType(given))
        }
    }

    /// The configuration the options give, nil without `--lora-rank`. An empty target list
    /// means every projection (resolved once the model's architecture is known).
    public static func parse(_ given: GivenOptions) throws -> LoRAConfig? {
        guard let r = given.values["--lora-rank"] else {
            // (--frozen-dtype says for itself, in frozenDType)
            for o in names.subtracting(["--frozen-dtype"]).sorted() where given.values[o] != nil { throw ConfigError("\(o) needs --lora-rank") }
            return nil
        }
        let rank = try parseInt("--lora-rank", r, range: 1...4096)
        var alpha = Float(2 * rank)
        if let s = given.values["--lora-alpha"] {
            guard let x = Float(s), x > 0, x.isFinite else { throw ConfigError("--lora-alpha: invalid value '\(s)'") }
            alpha = x
        }
        var dropout: Float = 0
        if let s = given.values["--lora-dropout"] {
            guard let x = Float(s), x >= 0, x < 1 else { throw ConfigError("--lora-dropout must be in [0, 1), got '\(s)'") }
            dropout = x
        }
        let given = given.values["--lora-targets"]
        let targets = given.map { $0.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty } } ?? []
        if given != nil && targets.isEmpty { throw ConfigError("--lora-targets needs at least one projection name") }
        return LoRAConfig(rank: rank, alpha: alpha, targets: targets, dropout: dropout)
    }

    /// `--frozen-dtype f32|bf16` (f32 when absent); bf16 only with LoRA, whose base is frozen.
    public static func frozenDType(_ given: GivenOptions) throws -> FrozenDType {
        guard let s = given.values["--frozen-dtype"] else { return .f32 }
        guard let t = FrozenDType(rawValue: s) else { throw ConfigError("--frozen-dtype must be f32 or bf16, got '\(s)'") }
        if t == .bf16 && given.values["--lora-rank"] == nil {
            throw ConfigError("--frozen-dtype bf16 needs --lora-rank: only weights that LoRA leaves frozen can be held in bfloat16")
        }
        return t
    }
}
