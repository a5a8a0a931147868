import Foundation

/// The tokenizer's cache of encoded words: byte strings to token ids. Open addressing on a
/// 64-bit hash of the bytes (8 at a time); keys and ids live in two growing arenas, so a lookup
/// hashes once, compares bytes only on a full hash match, and allocates nothing (a Dictionary
/// keyed by byte slices spent a quarter of encoding time hashing and comparing them).
struct WordCache {
    private struct Slot {
        var hash: UInt64 = 0
        /// Offset of the key in `keys`; -1 for an empty slot.
        var key: Int32 = -1
        var keyLength: Int32 = 0
        var value: Int32 = 0
        var valueLength: Int32 = 0
    }

    private var slots: [Slot]
    private var keys: [UInt8] = []
    private var values: [Int32] = []
    /// Words held.
    private(set) var count = 0
    /// Bytes of the words held.
    var storedBytes: Int { keys.count }

    init(capacity: Int = 1 << 12) {
        var c = 16
        while c < capacity { c <<= 1 }
        slots = [Slot](repeating: Slot(), count: c)
    }

    /// A 64-bit hash of `bytes`.
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>) -> UInt64 {
        let n = bytes.count
        var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n)
        guard let base = bytes.baseAddress else { return mix(h) }
        let raw = UnsafeRawPointer(base)
        var i = 0
        while i + 8 <= n {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0xBF58_476D_1CE4_E5B9
            h ^= h >> 29
            i += 8
        }
        var tail: UInt64 = 0
        var shift: UInt64 = 0
        while i < n { tail |= UInt64(base[i]) << shift; shift += 8; i += 1 }
        return mix(h ^ tail)
    }

    private static func mix(_ x: UInt64) -> UInt64 {
        var z = x
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        z = (z ^ (z >> 33)) &* 0xC4CE_B9FE_1A85_EC53
        return z ^ (z >> 33)
    }

    /// Appends the ids cached for `word` (whose hash is `hash`) to `out`; false when not cached.
    func append(_ word: UnsafeBufferPointer<UInt8>, hash: UInt64, to out: inout [Int32]) -> Bool {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: hash) & mask
        return slots.withUnsafeBufferPointer { s in
            while true {
                let slot = s[i]
                if slot.key < 0 { return false }
                if slot.hash == hash && Int(slot.keyLength) == word.count
                    && keys.withUnsafeBufferPointer({ k in
                        word.count == 0 || memcmp(k.baseAddress! + Int(slot.key), word.baseAddress!, word.count) == 0
                    })
                {
                    out.append(contentsOf: values[Int(slot.value)..<Int(slot.value + slot.valueLength)])
                    return true
                }
                i = (i + 1) & mask
            }
        }
    }

    /// Caches `ids` for `word` (not already cached).
    mutating func insert(_ word: UnsafeBufferPointer<UInt8>, hash: UInt64, ids: [Int32]) {
        if (count + 1) * 2 > slots.count { grow() }
        let slot = Slot(hash: hash, key: Int32(keys.count), keyLength: Int32(word.count), value: Int32(values.count), valueLength: Int32(ids.count))
        keys.append(contentsOf: word)
        values.append(contentsOf: ids)
        place(slot)
        count += 1
    }

    /// Forgets every word, keeping the storage.
    mutating func removeAll() {
        for i in slots.indices { slots[i].key = -1 }
        keys.removeAll(keepingCapacity: true)
        values.removeAll(keepingCapacity: true)
        count = 0
    }

    private mutating func place(_ slot: Slot) {
        let mask = slots.count - 1
        var i = Int(truncatingIfNeeded: slot.hash) & mask
        while slots[i].key >= 0 { i = (i + 1) & mask }
        slots[i] = slot
    }

    private mutating func grow() {
        let old = slots
        slots = [Slot](repeating: Slot(), count: old.count * 2)
        for s in old where s.key >= 0 { place(s) }
    }
}
