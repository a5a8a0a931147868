import Foundation
import TransformerCore

/// `rlhf tokenizer train`: learns a byte-level BPE tokenizer from a corpus.
enum TokenizerCommand: Command {
    static let name = "tokenizer"
    static let summary = "Train a byte-level BPE tokenizer on a corpus"
    static let help = """
        Usage: rlhf tokenizer train --corpus FILE --vocab-size N -o DIR

        Learns a GPT-2 style byte-level BPE tokenizer from a UTF-8 text file, deterministically (the
        same corpus and size always give the same tokenizer), and writes tokenizer.json, vocab.json,
        merges.txt, tokenizer_config.json and special_tokens_map.json into DIR, loadable by Hugging
        Face's AutoTokenizer. The vocabulary holds the 256 byte symbols, the learned merges and two
        special tokens at the end: <|endoftext|> (end of text) and <|pad|> (padding). Training stops
        early, with a note, when no pair occurs twice any more.

        Options:
          --corpus FILE     training text (UTF-8)
          --vocab-size N    vocabulary size including the special tokens (at least 258)
          -o DIR            output folder (created if needed)
        """

    static func run(_ args: [String]) throws {
        guard args.first == "train" else {
            throw UsageError(
                args.isEmpty ? "missing subcommand; use 'rlhf tokenizer train'" : "unknown subcommand '\(args[0])'; use 'rlhf tokenizer train'")
        }
        let a = try Arguments(Array(args.dropFirst()), options: ["--corpus", "--vocab-size", "-o"], flags: [])
        if let p = a.positional.first { throw UsageError("unexpected argument '\(p)'") }
        guard let corpusPath = a.string("--corpus") else { throw UsageError("--corpus FILE is required") }
        guard let size = try a.int("--vocab-size", range: 258...1 << 20) else { throw UsageError("--vocab-size N is required") }
        guard let out = a.string("-o") else { throw UsageError("-o DIR is required") }
        let corpus = try readUTF8File(corpusPath)
        let bar = ProgressBar("merges", total: size - 258, unit: "merges")
        let tok = try BPETrainer.train(corpus: corpus, vocabSize: size) { done, _ in bar.update(done) }
        bar.finish()
        try tok.save(to: URL(fileURLWithPath: out), maxLength: 1024)
        if tok.count < size {
            printError("note: the corpus supports only \(tok.count) tokens (no pair occurs twice any more); asked for \(size)")
        }
        print("wrote a \(tok.count)-token tokenizer to \(out)")
    }
}
