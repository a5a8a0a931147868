/// Generated text for benchmarks and for the tokenizers of randomly initialised test models.
public enum SyntheticText {
    /// Deterministic text of about `bytes` bytes: words built from syllables, numbers,
    /// punctuation, line breaks and some accented, CJK and emoji characters.
    public static func generate(bytes: Int, seed: UInt64) -> String {
        var rng = SeededRandom(seed: seed)
        let syllables = [
            "the", "an", "re", "in", "er", "on", "at", "es", "or", "ti", "ing", "ly", "pro", "con", "ble", "ment",
            "ka", "mo", "su", "ve", "qui", "tha", "ské", "über", "日本", "語", "😀",
        ]
        let punct = [".", ",", "!", "?", ";", ":", "'s", "'ll", " -", "\"", "(", ")"]
        var out = ""
        out.reserveCapacity(bytes + 64)
        while out.utf8.count < bytes {
            let r = rng.int(below: 100)
            if r < 78 {
                var w = ""
                for _ in 0..<(1 + rng.int(below: 3)) { w += syllables[rng.int(below: rng.int(below: 4) == 0 ? syllables.count : 16)] }
                out += (rng.int(below: 10) == 0 ? w.capitalized : w) + " "
            } else if r < 88 {
                out += punct[rng.int(below: punct.count)] + " "
            } else if r < 95 {
                out += String(rng.int(below: 100_000)) + " "
            } else if r < 98 {
                out += "\n"
            } else {
                out += String(repeating: " ", count: 1 + rng.int(below: 8))
            }
        }
        return out
    }
}
