import Foundation
import XCTest

@testable import TransformerCore

/// Byte-level BPE against Hugging Face: the ids of Fixtures/hf/golden_hf.json were produced by
/// both `tokenizers` and the slow GPT-2 tokenizer (OpenAI's original algorithm), which agreed.
final class TokenizerTests: XCTestCase {
    var cases: [[String: Any]] { (hfGolden["tokenizer"] as! [[String: Any]]) }

    func testTokenizerJSONMatchesHuggingFace() throws {
        let tok = try Tokenizer.load(tokenizerJSON: fixtureURL("hf/tokenizer/tokenizer.json"))
        XCTAssertEqual(tok.count, 700)
        for c in cases {
            let text = c["text"] as! String
            XCTAssertEqual(tok.encode(text), int32s(c["ids"]), "encoding \(text.debugDescription)")
            XCTAssertEqual(tok.decode(int32s(c["ids"])), c["decoded"] as! String, "decoding \(text.debugDescription)")
        }
    }

    func testVocabAndMergesMatchHuggingFace() throws {
        let dir = fixtureURL("hf/tokenizer")
        let tok = try Tokenizer.load(vocabJSON: dir.appendingPathComponent("vocab.json"), mergesTXT: dir.appendingPathComponent("merges.txt"))
        for c in cases {
            XCTAssertEqual(tok.encode(c["text"] as! String), int32s(c["ids"]), "encoding \((c["text"] as! String).debugDescription)")
        }
        XCTAssertEqual(tok.eosId, tok.id(of: "<|endoftext|>"))
        XCTAssertNotNil(tok.padId)
        XCTAssertNotEqual(tok.padId, tok.eosId)
    }

    func testRoundTripOnAnyText() throws {
        let tok = try Tokenizer.load(folder: fixtureURL("hf/tokenizer"))
        var rng = SeededRandom(seed: 5)
        let pool: [Unicode.Scalar] = [
            "a", "Z", " ", "\n", "\t", "'", "s", "é", "\u{301}", "日", "😀", "\u{200D}", "1", "!", "\u{0}", "\u{1B}", "\u{A0}", "\u{3000}",
        ]
        for _ in 0..<300 {
            var s = String.UnicodeScalarView()
            for _ in 0..<rng.int(below: 40) { s.append(pool[rng.int(below: pool.count)]) }
            let text = String(s)
            XCTAssertEqual(tok.decode(tok.encode(text, allowSpecial: false)), text)
        }
    }

    func testDecodingACutInsideACharacterDoesNotCrash() throws {
        let tok = try Tokenizer.load(folder: fixtureURL("hf/tokenizer"))
        let ids = tok.encode("😀日")
        XCTAssertGreaterThan(ids.count, 1)
        for cut in 1..<ids.count {
            let partial = tok.decode(Array(ids[..<cut]))
            XCTAssertTrue(partial.unicodeScalars.contains("\u{FFFD}") || partial == "😀", "cut \(cut): \(partial.debugDescription)")
        }
        XCTAssertEqual(tok.decode([Int32(tok.count + 5), -1]), "", "ids outside the vocabulary are skipped")
    }

    /// A fixture string given as code points (Foundation's JSON parser drops a leading U+FEFF).
    func codePoints(_ v: Any?) -> String {
        var s = String.UnicodeScalarView()
        for n in v as! [NSNumber] { s.append(Unicode.Scalar(n.uint32Value)!) }
        return String(s)
    }

    /// Llama 3 and Qwen2 style tokenizer.json files (Split regex then ByteLevel without it;
    /// Qwen2's NFC normalizer; Llama 3's ignore_merges and its post-processor's BOS) against
    /// Hugging Face `tokenizers` on 229 texts each: ids with and without special tokens and the
    /// decoded text (Fixtures/hf/make_tokenizer_fixtures.py); saved and loaded again, the same.
    func testLlama3AndQwen2StyleTokenizersMatchHuggingFace() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("hf/tokenizer_encodings.json"))) as! [String: Any]
        let cases = fixture["cases"] as! [[String: Any]]
        var checked: [String: Int] = [:]
        for name in ["llama3-style", "qwen2-style"] {
            let loaded = try Tokenizer.load(folder: fixtureURL("hf/\(name)"))
            XCTAssertEqual(loaded.preTokenization, name == "llama3-style" ? .llama3 : .qwen2)
            XCTAssertEqual(loaded.normalizesNFC, name == "qwen2-style")
            let dir = temporaryFolder()
            try loaded.save(to: dir, maxLength: 64)
            let reloaded = try Tokenizer.load(folder: dir)
            for tok in [loaded, reloaded] {
                for c in cases where c["tokenizer"] as! String == name {
                    let text = codePoints(c["text_cp"])
                    let ids = int32s(c["ids_no_special"])
                    XCTAssertEqual(tok.encode(text), ids, "\(name): \(text.debugDescription)")
                    XCTAssertEqual(
                        tok.encodeWithSpecialTokens(text), int32s(c["ids_with_special"]), "\(name) with special tokens: \(text.debugDescription)")
                    XCTAssertEqual(
                        Array(tok.decode(ids).unicodeScalars), Array(codePoints(c["decoded_cp"]).unicodeScalars),
                        "\(name) decode: \(text.debugDescription)")
                    checked[name, default: 0] += 1
                }
            }
        }
        XCTAssertEqual(checked["llama3-style"], 2 * 229)
        XCTAssertEqual(checked["qwen2-style"], 2 * 229)
    }

    /// The Split pattern alone, piece by piece, against `tokenizers`' pre-tokenizer.
    /// SmolLM's pre-tokenizer, Sequence[Digits(individual_digits), ByteLevel]: every digit its
    /// own piece (Unicode numerics too), against `tokenizers` (Fixtures/hf/make_smollm_style.py);
    /// and it survives a save and reload.
    func testDigitsThenByteLevelMatchesHuggingFace() throws {
        let tok = try Tokenizer.load(tokenizerJSON: fixtureURL("hf/smollm-style/tokenizer.json"))
        XCTAssertEqual(tok.preTokenization, .gpt2Digits)
        let ref = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("hf/smollm-style/encodings.json"))) as! [String: Any]
        let dir = temporaryFolder()
        try tok.save(to: dir, maxLength: 64)
        let back = try Tokenizer.load(folder: dir)
        XCTAssertEqual(back.preTokenization, .gpt2Digits)
        var checked = 0
        for c in ref["cases"] as! [[String: Any]] {
            var text = String.UnicodeScalarView()
            for v in c["code_points"] as! [NSNumber] { text.append(Unicode.Scalar(v.uint32Value)!) }
            let t = String(text)
            XCTAssertEqual(tok.encode(t), int32s(c["ids"]), t)
            XCTAssertEqual(back.encode(t), int32s(c["ids"]), t)
            checked += 1
        }
        XCTAssertEqual(checked, 12)
    }

    func testSplitPatternsMatchHuggingFacePieces() throws {
        let fixture = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("hf/tokenizer_encodings.json"))) as! [String: Any]
        var n = 0
        for c in fixture["cases"] as! [[String: Any]] {
            let pattern: PreTokenization = c["tokenizer"] as! String == "llama3-style" ? .llama3 : .qwen2
            let normalized = codePoints(c["normalized_cp"])
            var pieces: [[Unicode.Scalar]] = []
            let bytes = Array(normalized.utf8)
            PreTokenizer.forEachPiece(bytes, 0, bytes.count, pattern: pattern) {
                pieces.append(Array(String(decoding: $0, as: UTF8.self).unicodeScalars))
            }
            let expected = (c["regex_pieces_cp"] as! [Any]).map { Array(codePoints($0).unicodeScalars) }
            XCTAssertEqual(pieces, expected, "\(pattern): \(normalized.debugDescription)")
            n += 1
        }
        XCTAssertEqual(n, 458)
    }

    /// Patterns and pipelines this code does not reproduce exactly are refused, not approximated.
    func testOtherSplitPatternsAndProcessorsAreRefused() throws {
        let original = try JSONSerialization.jsonObject(with: Data(contentsOf: fixtureURL("hf/llama3-style/tokenizer.json"))) as! [String: Any]
        func refuses(_ change: (inout [String: Any]) -> Void, _ expected: String) throws {
            var root = original
            change(&root)
            let url = temporaryFolder().appendingPathComponent("tokenizer.json")
            try JSONSerialization.data(withJSONObject: root).write(to: url)
            XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in XCTAssertTrue("\(e)".contains(expected), "\(expected): \(e)") }
        }
        try refuses(
            { r in
                var pre = r["pre_tokenizer"] as! [String: Any]
                var list = pre["pretokenizers"] as! [[String: Any]]
                list[0]["pattern"] = ["Regex": #"\w+|\s+"#]
                pre["pretokenizers"] = list
                r["pre_tokenizer"] = pre
            }, "not Llama 3's or Qwen2's")
        try refuses({ r in r["normalizer"] = ["type": "NFKC"] }, "normalizer NFKC is not supported")
        try refuses({ r in r["post_processor"] = ["type": "RobertaProcessing"] }, "post_processor RobertaProcessing is not supported")
        try refuses({ r in r["pre_tokenizer"] = ["type": "Metaspace"] }, "pre-tokenizer Metaspace is not supported")
    }

    /// A vocabulary declaring a huge id is refused before a table of that size is allocated
    /// (a few bytes declaring {"a": 16777215} used to size a table of 16.8 million entries).
    func testHugeTokenIdIsRefusedBeforeAllocation() throws {
        XCTAssertThrowsError(try Tokenizer(vocab: ["a": 16_777_215, "b": 0], merges: [], special: [:])) { e in
            XCTAssertTrue("\(e)".contains("ids must run from 0 to 1 without gaps"), "\(e)")
        }
    }

    func testLongWhitespaceRun() throws {
        let tok = try Tokenizer.load(folder: fixtureURL("hf/tokenizer"))
        let text = "a" + String(repeating: " ", count: 20_000) + "b" + String(repeating: "\n", count: 5000)
        let ids = tok.encode(text)
        XCTAssertEqual(tok.decode(ids), text)
        // The same as the pieces encoded separately: whitespace minus its last space, then " b".
        let pieces =
            tok.encode("a") + tok.encode(String(repeating: " ", count: 19_999)) + tok.encode(" b") + tok.encode(String(repeating: "\n", count: 5000))
        XCTAssertEqual(ids, pieces)
    }

    func testSpecialTokens() throws {
        let tok = try Tokenizer.load(folder: fixtureURL("hf/tokenizer"))
        let eos = tok.eosId!
        XCTAssertEqual(tok.encode("hi<|endoftext|>"), tok.encode("hi") + [eos])
        XCTAssertFalse(tok.encode("hi<|endoftext|>", allowSpecial: false).contains(eos))
        XCTAssertEqual(tok.decode(tok.encode("x<|endoftext|>"), skipSpecial: true), "x")
    }

    func testRejectsOtherTokenizerTypes() throws {
        let dir = temporaryFolder()
        let url = dir.appendingPathComponent("tokenizer.json")
        try Data(#"{"model":{"type":"WordPiece","vocab":{"a":0}},"pre_tokenizer":{"type":"BertPreTokenizer"}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in
            XCTAssertTrue("\(e)".contains("unsupported tokenizer type WordPiece"), "\(e)")
            XCTAssertTrue("\(e)".contains(url.path), "\(e)")
        }
        try Data(#"{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"Metaspace"}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in XCTAssertTrue("\(e)".contains("Metaspace"), "\(e)") }
        try Data(#"{"model":{"type":"BPE","vocab":{"a":0},"merges":[]},"pre_tokenizer":{"type":"ByteLevel"}}"#.utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in XCTAssertTrue("\(e)".contains("byte-level"), "\(e)") }
        try Data("{not json".utf8).write(to: url)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerJSON: url)) { e in XCTAssertTrue("\(e)".contains("invalid JSON"), "\(e)") }
    }

    func testTrainingIsDeterministicAndRoundTripsThroughFiles() throws {
        var lines: [String] = []
        var rng = SeededRandom(seed: 11)
        let words = ["kind", "rude", "thanks", "help", "please", "answer", "question", "you", "the", "a", "日本", "😀", "don't", "I'm"]
        for _ in 0..<2000 { lines.append((0..<8).map { _ in words[rng.int(below: words.count)] }.joined(separator: " ")) }
        let corpus = lines.joined(separator: "\n") + "<|endoftext|>"
        let a = try BPETrainer.train(corpus: corpus, vocabSize: 300)
        let b = try BPETrainer.train(corpus: corpus, vocabSize: 300)
        XCTAssertEqual(a.tokens, b.tokens)
        XCTAssertEqual(a.count, 300)
        XCTAssertEqual(a.eosId, 298); XCTAssertEqual(a.padId, 299)
        XCTAssertEqual(a.encode("<|endoftext|>"), [298])
        // Merges compress: frequent text takes well under one token per two bytes.
        XCTAssertLessThan(a.encode(lines[0]).count * 2, lines[0].utf8.count)
        let dir = temporaryFolder()
        try a.save(to: dir, maxLength: 64)
        let fromJSON = try Tokenizer.load(tokenizerJSON: dir.appendingPathComponent("tokenizer.json"))
        let fromPair = try Tokenizer.load(vocabJSON: dir.appendingPathComponent("vocab.json"), mergesTXT: dir.appendingPathComponent("merges.txt"))
        for text in lines.prefix(50) + ["unseen wörds 😀 here", "<|endoftext|><|pad|>"] {
            XCTAssertEqual(fromJSON.encode(text), a.encode(text))
            XCTAssertEqual(fromPair.encode(text), a.encode(text))
            XCTAssertEqual(a.decode(a.encode(text)), text)
        }
        XCTAssertEqual(fromJSON.padId, a.padId); XCTAssertEqual(fromPair.padId, a.padId)
        XCTAssertThrowsError(try BPETrainer.train(corpus: corpus, vocabSize: 100))
    }

    func testTrainingMergesMostFrequentPairFirst() throws {
        // Words: "ab" once, " ab" five times, " cd" three times. Pair counts: (a,b) 6, (Ġ,a) 5,
        // (Ġ,c) 3, (c,d) 3. After ab: (Ġ,ab) 5. Then (Ġ,c) and (c,d) tie at 3, and the tie goes to
        // the pair whose spelling sorts first: space (0x20) before "c".
        let tok = try BPETrainer.train(corpus: "ab ab ab ab ab ab cd cd cd", vocabSize: 256 + 1 + 3, specialTokens: ["<|endoftext|>"])
        XCTAssertEqual(tok.merges.map { tok.token($0.0) + tok.token($0.1) }, ["ab", "Ġab", "Ġc"])
        XCTAssertEqual(tok.count, 260)
    }
}

extension TokenizerTests {
    func testAddPrefixSpaceAsHuggingFace() throws {
        let base = try Tokenizer.load(folder: fixtureURL("hf/tokenizer"))
        var vocab: [String: Int] = [:]
        for (i, t) in base.tokens.enumerated() { vocab[t] = i }
        let merges = base.merges.map { (base.token($0.0), base.token($0.1)) }
        let special = base.specialTokens.mapValues { Int($0) }
        let prefixed = try Tokenizer(vocab: vocab, merges: merges, special: special, addPrefixSpace: true)
        XCTAssertEqual(prefixed.encode("Hello world"), base.encode(" Hello world"))
        XCTAssertEqual(prefixed.encode(" Hello"), base.encode(" Hello"), "no second space")
        XCTAssertEqual(prefixed.encode("\nHello"), base.encode(" \nHello"), "only a leading space counts")
        XCTAssertEqual(prefixed.encode(""), [], "empty text stays empty (checked against tokenizers ByteLevel)")
    }
}

/// The word cache against a dictionary: words of every length (hashing reads 8 bytes at a time,
/// then a tail), many more than its first capacity (it grows), the empty word, and clearing.
final class WordCacheTests: XCTestCase {
    func testWordCacheAgreesWithADictionary() {
        var cache = WordCache(capacity: 16)
        var reference: [[UInt8]: [Int32]] = [:]
        var rng = SeededRandom(seed: 3)
        for i in 0..<5000 {
            let word = (0..<rng.int(below: 24)).map { _ in UInt8(rng.int(below: 4) + 97) } // few letters: many near-duplicates
            if reference[word] != nil { continue }
            let ids = (0..<(i % 5)).map { _ in Int32(rng.int(below: 1000)) }
            word.withUnsafeBufferPointer { cache.insert($0, hash: WordCache.hash($0), ids: ids) }
            reference[word] = ids
        }
        XCTAssertEqual(cache.count, reference.count)
        for (word, ids) in reference {
            var out: [Int32] = [7]
            XCTAssertTrue(word.withUnsafeBufferPointer { cache.append($0, hash: WordCache.hash($0), to: &out) }, "\(word)")
            XCTAssertEqual(out, [7] + ids)
        }
        var out: [Int32] = []
        let missing: [UInt8] = Array("zzzz".utf8)
        XCTAssertFalse(missing.withUnsafeBufferPointer { cache.append($0, hash: WordCache.hash($0), to: &out) })
        cache.removeAll()
        XCTAssertEqual(cache.count, 0)
        XCTAssertFalse(reference.keys.first!.withUnsafeBufferPointer { cache.append($0, hash: WordCache.hash($0), to: &out) })
        XCTAssertTrue(out.isEmpty)
    }
}

extension WordCacheTests {
    /// The pre-tokenizer's ASCII classes, by arithmetic, against Unicode's properties.
    func testASCIIClassesMatchUnicode() {
        for v in UInt32(0)..<128 { XCTAssertEqual(PreTokenizer.kind(v), PreTokenizer.classify(v), "U+\(String(v, radix: 16))") }
    }
}
