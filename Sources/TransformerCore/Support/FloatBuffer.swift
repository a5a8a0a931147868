#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A fixed-size, 64-byte aligned array of `Float` that owns its memory.
///
/// Hot loops take `pointer` once and index it directly, so no Swift `Array` copy-on-write or
/// bounds check stands in the way. The memory is zero-initialised.
public final class FloatBuffer {
    /// Start of the storage; valid for `count` elements for the lifetime of the buffer.
    public let pointer: UnsafeMutablePointer<Float>
    /// Number of elements.
    public let count: Int

    /// Whether the storage came from `posix_memalign` (freed with `free`).
    private let alignedByHand: Bool

    /// Allocates `count` zeroed floats. With `hugePages`, storage of at least one huge page is
    /// aligned to 2 MiB and the kernel is asked to back it with huge pages (`MADV_HUGEPAGE`), so
    /// that streaming it (a model's weights, read in full for every decoded token) crosses no
    /// 4 KiB page boundaries, where hardware prefetching stops and TLB misses accumulate.
    public init(count: Int, hugePages: Bool = false) {
        precondition(count >= 0, "FloatBuffer: negative count")
        self.count = count
        let bytes = max(count, 1) * 4
        let huge = 2 << 20
        var raw: UnsafeMutableRawPointer?
        #if os(Linux)
        if hugePages && bytes >= huge {
            let rounded = (bytes + huge - 1) / huge * huge
            if posix_memalign(&raw, huge, rounded) == 0, let r = raw {
                _ = madvise(r, rounded, MADV_HUGEPAGE) // advice only: 4 KiB pages still work
            } else {
                raw = nil
            }
        }
        #endif
        alignedByHand = raw != nil
        let storage = raw ?? UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        pointer = storage.bindMemory(to: Float.self, capacity: max(count, 1))
        pointer.initialize(repeating: 0, count: max(count, 1))
    }

    /// Allocates a buffer holding a copy of `values`.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    deinit {
        // Packed bfloat16 copies of weights held here go with them (the address may come back).
        if count > 0 { PackedWeights.changedEverywhere(UnsafeRawPointer(pointer), bytes: count * 4) }
        if alignedByHand { free(pointer) } else { pointer.deallocate() }
    }

    /// Sets every element to zero.
    public func zero() { pointer.update(repeating: 0, count: count) }

    /// Gives the memory of elements `range` back to the operating system, as far as whole pages
    /// lie inside it, and sets the elements at its ragged ends to NaN: nothing may read them any
    /// more (a read of a released page gives zeros, of an end NaN). Returns the bytes given back.
    @discardableResult
    func release(_ range: Range<Int>) -> Int {
        precondition(range.lowerBound >= 0 && range.upperBound <= count, "FloatBuffer.release: range out of bounds")
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let lo = UInt(bitPattern: pointer + range.lowerBound), hi = UInt(bitPattern: pointer + range.upperBound)
        let start = (lo + UInt(page) - 1) / UInt(page) * UInt(page), end = hi / UInt(page) * UInt(page)
        guard start < end else {
            (pointer + range.lowerBound).update(repeating: .nan, count: range.count)
            return 0
        }
        let headCount = Int(start - lo) / 4, tailStart = Int(end - UInt(bitPattern: pointer)) / 4
        (pointer + range.lowerBound).update(repeating: .nan, count: headCount)
        (pointer + tailStart).update(repeating: .nan, count: range.upperBound - tailStart)
        #if os(Linux)
        let advice = MADV_DONTNEED
        #else
        let advice = MADV_FREE
        #endif
        guard madvise(UnsafeMutableRawPointer(bitPattern: start), Int(end - start), advice) == 0 else {
            // Not given back: make every element unreadable all the same.
            (pointer + range.lowerBound).update(repeating: .nan, count: range.count)
            return 0
        }
        return Int(end - start)
    }

    /// A copy of the contents as a Swift array (for tests and I/O, not hot loops).
    public var array: [Float] { Array(UnsafeBufferPointer(start: pointer, count: count)) }

    /// Element access (bounds-checked in debug builds).
    public subscript(i: Int) -> Float {
        get { assert(i >= 0 && i < count); return pointer[i] }
        set { assert(i >= 0 && i < count); pointer[i] = newValue }
    }
}

/// A growable scratch area that hands out aligned float storage and reallocates only when a
/// request exceeds its capacity, so steady-state loops never allocate.
public final class Scratch {
    private var buffer = FloatBuffer(count: 0)

    /// Creates an empty scratch area.
    public init() {}

    /// Storage for at least `count` floats; contents are unspecified.
    public func floats(_ count: Int) -> UnsafeMutablePointer<Float> {
        if buffer.count < count { buffer = FloatBuffer(count: count) }
        return buffer.pointer
    }

    /// Storage for at least `count` 32-bit words (the same memory as `floats`).
    public func words(_ count: Int) -> UnsafeMutablePointer<UInt32> {
        UnsafeMutableRawPointer(floats(count)).assumingMemoryBound(to: UInt32.self)
    }
}
