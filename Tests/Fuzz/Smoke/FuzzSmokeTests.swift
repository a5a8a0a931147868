import Foundation
import FuzzTargets
import XCTest

/// A few seconds of what Tests/Fuzz/run-fuzzers does for minutes: every fuzz target runs over its
/// seed corpus and over mutations of it (bit flips, cuts, splices, huge numbers). A crash fails
/// the test run; the assertions check that the corpus reaches both the parsers' values and their
/// errors, so that the long fuzzing runs start from inputs that exercise the real code.
final class FuzzSmokeTests: XCTestCase {
    static let corpus = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Corpus")

    func testEveryTargetOverItsCorpusAndMutations() throws {
        for target in FuzzTarget.allCases {
            let seeds = target.seeds(corpusRoot: Self.corpus)
            XCTAssertGreaterThanOrEqual(seeds.count, 2, "\(target.rawValue): the seed corpus is missing")
            let accepted = seeds.filter { target.run($0) }.count
            XCTAssertGreaterThan(accepted, 0, "\(target.rawValue): no seed parses, so fuzzing would never get past the first check")
            var rng = Mutator(seed: 0x5EED ^ UInt64(target.rawValue.utf8.count))
            var rejected = 0
            for i in 0..<300 {
                let input = rng.mutate(seeds[i % seeds.count], other: seeds[(i * 7 + 3) % seeds.count])
                if !target.run(input) { rejected += 1 }
            }
            XCTAssertGreaterThan(rejected, 0, "\(target.rawValue): no mutation was refused")
        }
    }

    /// Inputs that once needed a fix: each must be refused, quickly and without allocating what it
    /// declares.
    func testHostileSizesAreRefusedBeforeAllocation() throws {
        // A config declaring about 2^40 parameters with a 1-layer, width-8 model.safetensors.
        let huge = #"{"n_layer": 1024, "n_head": 1, "n_embd": 65536, "n_positions": 1048576, "vocab_size": 16777216}"#
        XCTAssertFalse(FuzzTarget.config.run(Data(huge.utf8)))
        // A safetensors header whose shape multiplies past Int.max.
        let header = #"{"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#
        var st = Data(withUnsafeBytes(of: UInt64(header.utf8.count).littleEndian) { Array($0) })
        st.append(Data(header.utf8)); st.append(Data(count: 4))
        XCTAssertFalse(FuzzTarget.safetensors.run(st))
    }
}

/// Deterministic byte mutations in the manner of libFuzzer's.
struct Mutator {
    private var state: UInt64
    init(seed: UInt64) { state = seed | 1 }

    mutating func next(_ n: Int) -> Int {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return n <= 0 ? 0 : Int(state % UInt64(n))
    }

    mutating func mutate(_ seed: Data, other: Data) -> Data {
        var b = [UInt8](seed)
        for _ in 0...next(3) {
            switch next(7) {
            case 0 where !b.isEmpty: b[next(b.count)] ^= UInt8(1 << next(8))
            case 1 where !b.isEmpty: b[next(b.count)] = UInt8(truncatingIfNeeded: next(256))
            case 2 where !b.isEmpty: b.removeSubrange(next(b.count)..<b.count)
            case 3 where !b.isEmpty:
                let at = next(b.count)
                b.removeSubrange(at..<min(b.count, at + 1 + next(16)))
            case 4:
                let o = [UInt8](other)
                let from = next(o.count)
                b.insert(contentsOf: o[from..<min(o.count, from + 1 + next(64))], at: next(b.count + 1))
            case 5:
                // A digit run becomes a huge or negative number.
                if let d = b.indices.filter({ (48...57).contains(b[$0]) }).randomElementIndex(&self) {
                    let huge = ["99999999999999999999", "-1", "4294967296", "1e308", "0"][next(5)]
                    b.replaceSubrange(d...d, with: Array(huge.utf8))
                }
            default:
                let at = next(b.count + 1)
                b.insert(contentsOf: [UInt8](["\"", "{", "}", "[", "]", ",", ":", "\\u0000", "\n", "\u{FEFF}", "\\ud800"][next(11)].utf8), at: at)
            }
        }
        return Data(b)
    }
}

private extension Array where Element == Int {
    func randomElementIndex(_ m: inout Mutator) -> Int? { isEmpty ? nil : self[m.next(count)] }
}
