import Foundation
import TransformerCore

/// `rlhf bench --only tokenize`: MB/s of byte-level BPE encoding.
extension BenchCommand {
    /// The tokenize rows: GPT-2's, Llama 3's and Qwen2's (NFC) pre-tokenisation.
    static func reportTokenize(_ out: BenchOutput, repeats repeatCount: Int?) throws {
        for (pattern, nfc) in [(PreTokenization.gpt2, false), (.llama3, false), (.qwen2, true)] {
            let (mbps, tokens) = try benchTokenize(repeats: repeatCount, pattern: pattern, nfc: nfc)
            let label = "tokenize 4 MB, \(pattern.rawValue)" + (nfc ? "+NFC" : "")
            out.emit(
                [
                    "what": "tokenize", "pattern": pattern.rawValue, "nfc": nfc, "mb": 4, "vocab": 8192, "mb_per_s": round2(mbps),
                    "bytes_per_token": round2(tokens),
                ],
                text: label.column(28) + "\(fmt(mbps)) MB/s (\(fmt(tokens)) bytes/token)")
        }
    }

    static func benchTokenize(repeats: Int?, pattern: PreTokenization, nfc: Bool) throws -> (Double, Double) {
        let trained = try BPETrainer.train(corpus: SyntheticText.generate(bytes: 1 << 20, seed: 1), vocabSize: 8192)
        // The same vocabulary and merges under Llama 3's or Qwen2's pre-tokenisation (and NFC).
        let tok =
            pattern == .gpt2 && !nfc
            ? trained
            : try Tokenizer(
                vocab: Dictionary(uniqueKeysWithValues: trained.tokens.enumerated().map { ($1, $0) }),
                merges: trained.merges.map { (trained.tokens[Int($0.0)], trained.tokens[Int($0.1)]) },
                special: trained.specialTokens.mapValues(Int.init), preTokenization: pattern, normalizesNFC: nfc)
        let text = SyntheticText.generate(bytes: 4 << 20, seed: 2)
        var count = 0
        let seconds = timeBest(repeats: repeats, minimumTime: 1.0) {
            tok.clearCache()
            count = tok.encode(text).count
        }
        let bytes = Double(text.utf8.count)
        return (bytes / seconds / 1e6, bytes / Double(max(count, 1)))
    }
}
