/// The train/validation split of preference data, by prompt: every stage that learns from the
/// run's comparisons (train-reward, DPO) calls this with the same prompts, fraction and seed and
/// so holds out the same prompts.
public enum PreferenceSplit {
    /// About `fraction` of `promptIds` (at least one, and never all when there are two or more),
    /// chosen by a seeded shuffle of the sorted ids.
    public static func validationPrompts(_ promptIds: Set<Int64>, fraction: Double, seed: UInt64) -> Set<Int64> {
        var prompts = promptIds.sorted()
        var rng = SeededRandom(seed: seed ^ 0x5B17)
        rng.shuffle(&prompts)
        let nVal = min(prompts.count - 1, max(1, Int((Double(prompts.count) * fraction).rounded())))
        return Set(prompts.prefix(max(0, nVal)))
    }
}
