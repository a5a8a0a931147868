import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Element types a safetensors file may declare. Only F32, F16 and BF16 can be loaded as floats;
/// the others are understood so that their sizes can be validated.
public enum SafeTensorsDType: String, Sendable, CaseIterable {
    case F64, F32, F16, BF16, I64, I32, I16, I8, U64, U32, U16, U8, BOOL, F8_E4M3, F8_E5M2

    /// Bytes per element.
    public var size: Int {
        switch self {
        case .F64, .I64, .U64: return 8
        case .F32, .I32, .U32: return 4
        case .F16, .BF16, .I16, .U16: return 2
        case .I8, .U8, .BOOL, .F8_E4M3, .F8_E5M2: return 1
        }
    }

    /// Whether `SafeTensorsFile` converts this type to Float.
    public var isFloatLoadable: Bool { self == .F32 || self == .F16 || self == .BF16 }
}

/// One tensor's entry in a safetensors header.
public struct SafeTensorsEntry: Sendable, Equatable {
    /// Its name.
    public let name: String
    /// Its element type.
    public let dtype: SafeTensorsDType
    /// Its shape.
    public let shape: [Int]
    /// Its bytes, relative to the start of the data section.
    public let byteRange: Range<Int>
    /// Number of elements.
    public var count: Int { shape.reduce(1, *) }
}

/// A validated, memory-mapped safetensors file.
///
/// Layout: an 8-byte little-endian header length N, N bytes of JSON header
/// (`{"name": {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}`), then
/// the data. Everything a header declares is checked against the real file size before any
/// tensor is touched, so a hostile header cannot cause a large allocation or a read outside the
/// file: sizes must multiply out without overflow to exactly the declared byte range, ranges must
/// lie inside the data, and together they must tile it with no overlap and no hole.
public final class SafeTensorsFile {
    /// Largest header accepted (the reference implementation's limit).
    public static let maxHeaderBytes = 100_000_000
    /// The file.
    public let url: URL
    /// The `__metadata__` entry (string to string).
    public let metadata: [String: String]
    /// Tensors by name.
    public let entries: [String: SafeTensorsEntry]
    /// Tensor names in file order.
    public let names: [String]
    private let base: UnsafeMutableRawPointer?
    private let mappedLength: Int
    private let dataStart: Int

    /// Opens, maps and validates `url`.
    public init(url: URL) throws {
        self.url = url
        let path = url.path
        func fail(_ m: String) -> FormatError { FormatError("\(path): \(m)") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else {
            throw fail(errno == ENOENT ? "no such file" : "cannot open (\(String(cString: strerror(errno))))")
        }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0 else { throw fail("cannot stat (\(String(cString: strerror(errno))))") }
        guard (st.st_mode & S_IFMT) == S_IFREG else { throw fail("not a regular file") }
        let size = Int(st.st_size)
        guard size >= 8 else { throw fail("\(size) bytes is too short for a safetensors file (it needs an 8-byte header length)") }
        guard let p = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), p != MAP_FAILED else {
            throw fail("cannot map the file (\(String(cString: strerror(errno))))")
        }
        base = p; mappedLength = size
        do {
            var n: UInt64 = 0
            memcpy(&n, p, 8)
            n = UInt64(littleEndian: n)
            guard n <= UInt64(size - 8) else { throw fail("the header length \(n) goes beyond the end of the file (\(size) bytes)") }
            guard n <= UInt64(Self.maxHeaderBytes) else { throw fail("the header length \(n) is over the \(Self.maxHeaderBytes)-byte limit") }
            guard n >= 2 else { throw fail("the header length \(n) is too small to hold a JSON object") }
            let headerLen = Int(n)
            dataStart = 8 + headerLen
            let header = Data(bytes: p + 8, count: headerLen)
            guard String(data: header, encoding: .utf8) != nil else { throw fail("the header is not valid UTF-8") }
            let parsed: Any
            do { parsed = try JSONSerialization.jsonObject(with: header) } catch { throw fail("the header is not valid JSON") }
            guard let obj = parsed as? [String: Any] else { throw fail("the header is not a JSON object") }
            let (entries, metadata) = try Self.parse(obj, dataLength: size - dataStart, fail)
            self.metadata = metadata
            self.names = entries.map(\.name)
            self.entries = Dictionary(uniqueKeysWithValues: entries.map { ($0.name, $0) })
        } catch {
            munmap(p, size)
            throw error
        }
    }

    deinit { if let base { munmap(base, mappedLength) } }

    private static func parse(_ obj: [String: Any], dataLength: Int, _ fail: (String) -> FormatError) throws
        -> ([SafeTensorsEntry], [String: String])
    {
        var metadata: [String: String] = [:]
        var list: [SafeTensorsEntry] = []
        for (name, value) in obj {
            if name == "__metadata__" {
                guard let m = value as? [String: Any] else { throw fail("__metadata__ is not an object") }
                for (k, v) in m {
                    guard let s = v as? String else { throw fail("__metadata__ entry \(k) is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let e = value as? [String: Any] else { throw fail("tensor \(name): its entry is not an object") }
            guard let ds = e["dtype"] as? String else { throw fail("tensor \(name): missing dtype") }
            guard let dtype = SafeTensorsDType(rawValue: ds) else { throw fail("tensor \(name): unknown dtype \(ds)") }
            guard let rawShape = e["shape"] as? [Any] else { throw fail("tensor \(name): missing shape") }
            guard rawShape.count <= 8 else { throw fail("tensor \(name): \(rawShape.count) dimensions is more than the 8 supported") }
            var shape: [Int] = []
            var count = 1
            for d in rawShape {
                guard let v = JSONText.int(d), v >= 0 else {
                    throw fail("tensor \(name): shape \(rawShape) has a dimension that is not a non-negative integer")
                }
                let (c, overflow) = count.multipliedReportingOverflow(by: v)
                guard !overflow, c <= dataLength else { throw fail("tensor \(name): shape \(rawShape) declares more elements than the file holds") }
                count = c; shape.append(v)
            }
            guard let offs = e["data_offsets"] as? [Any], offs.count == 2, let b = JSONText.int(offs[0]), let en = JSONText.int(offs[1]) else {
                throw fail("tensor \(name): data_offsets must be [begin, end]")
            }
            guard 0 <= b, b <= en, en <= dataLength else {
                throw fail("tensor \(name): data_offsets [\(b), \(en)] lie outside the \(dataLength)-byte data section")
            }
            guard count * dtype.size == en - b else {
                throw fail("tensor \(name): shape \(shape) of \(ds) needs \(count * dtype.size) bytes but data_offsets give \(en - b)")
            }
            list.append(SafeTensorsEntry(name: name, dtype: dtype, shape: shape, byteRange: b..<en))
        }
        list.sort {
            $0.byteRange.lowerBound != $1.byteRange.lowerBound
                ? $0.byteRange.lowerBound < $1.byteRange.lowerBound : $0.byteRange.upperBound < $1.byteRange.upperBound
        }
        var end = 0
        for e in list {
            if e.byteRange.lowerBound < end { throw fail("tensor \(e.name): its bytes overlap another tensor's") }
            if e.byteRange.lowerBound > end {
                throw fail("tensor \(e.name): a gap of \(e.byteRange.lowerBound - end) bytes precedes it; the data must be fully indexed")
            }
            end = e.byteRange.upperBound
        }
        if end != dataLength { throw fail("\(dataLength - end) bytes at the end of the data belong to no tensor") }
        return (list, metadata)
    }

    /// The raw bytes of a tensor, valid while this object lives.
    public func rawBytes(_ name: String) throws -> UnsafeRawBufferPointer {
        guard let e = entries[name] else { throw FormatError("\(url.path): no tensor named \(name)") }
        return UnsafeRawBufferPointer(start: base! + dataStart + e.byteRange.lowerBound, count: e.byteRange.count)
    }

    /// Converts tensor `name` to Float into `dest`, which holds exactly its element count.
    public func read(_ name: String, into dest: UnsafeMutableBufferPointer<Float>) throws {
        guard let e = entries[name] else { throw FormatError("\(url.path): no tensor named \(name)") }
        guard e.dtype.isFloatLoadable else {
            throw FormatError("\(url.path): tensor \(name) is \(e.dtype.rawValue); only F32, F16 and BF16 load as floats")
        }
        guard dest.count == e.count else { throw FormatError("\(url.path): tensor \(name) has \(e.count) elements, expected \(dest.count)") }
        let src = try rawBytes(name)
        let d = dest.baseAddress!
        switch e.dtype {
        case .F32:
            memcpy(d, src.baseAddress!, e.count * 4)
            for i in 0..<e.count { d[i] = Float(bitPattern: UInt32(littleEndian: d[i].bitPattern)) }
        case .F16:
            for i in 0..<e.count { d[i] = HalfFloat.float(fromBits: UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
        case .BF16:
            for i in 0..<e.count {
                d[i] = Float(bitPattern: UInt32(UInt16(littleEndian: src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) << 16)
            }
        default: break
        }
    }

    /// Tensor `name` converted to Float.
    public func floats(_ name: String) throws -> [Float] {
        guard let e = entries[name] else { throw FormatError("\(url.path): no tensor named \(name)") }
        var out = [Float](repeating: 0, count: e.count)
        try out.withUnsafeMutableBufferPointer { try read(name, into: $0) }
        return out
    }
}

/// One tensor to write: a name, a shape and `count` floats.
public struct SafeTensorsOutput {
    /// Its name in the file.
    public var name: String
    /// Its shape.
    public var shape: [Int]
    /// Its values, shape-product floats (must stay valid during the write).
    public var data: UnsafeBufferPointer<Float>
    /// Element type written: F32, F16 or BF16 (rounded to nearest even).
    public var dtype: SafeTensorsDType

    /// A tensor to write.
    public init(name: String, shape: [Int], data: UnsafeBufferPointer<Float>, dtype: SafeTensorsDType = .F32) {
        precondition(shape.reduce(1, *) == data.count, "SafeTensorsOutput \(name): shape \(shape) does not match \(data.count) values")
        precondition(dtype.isFloatLoadable, "SafeTensorsOutput: only F32, F16 and BF16 are written")
        self.name = name; self.shape = shape; self.data = data; self.dtype = dtype
    }
}

/// Writes safetensors files atomically.
public enum SafeTensorsWriter {
    /// Writes `tensors` (in the given order) and `metadata` to `url` via a temporary file,
    /// fsync and rename. The header is padded with spaces so the data starts 8-byte aligned.
    public static func write(_ tensors: [SafeTensorsOutput], metadata: [String: String] = [:], to url: URL) throws {
        var parts: [String] = []
        if !metadata.isEmpty {
            let m = metadata.sorted { $0.key < $1.key }.map { "\(JSONText.quote($0.key)):\(JSONText.quote($0.value))" }
            parts.append("\"__metadata__\":{\(m.joined(separator: ","))}")
        }
        var offset = 0
        for t in tensors {
            let bytes = t.data.count * t.dtype.size
            parts.append(
                "\(JSONText.quote(t.name)):{\"dtype\":\"\(t.dtype.rawValue)\",\"shape\":[\(t.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}"
            )
            offset += bytes
        }
        var header = "{" + parts.joined(separator: ",") + "}"
        while header.utf8.count % 8 != 0 { header += " " }
        try AtomicFile.write(to: url) { w in
            var n = UInt64(header.utf8.count).littleEndian
            try withUnsafeBytes(of: &n) { try w.write($0) }
            try w.write(header)
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            for t in tensors {
                let size = t.dtype.size
                var i = 0
                while i < t.data.count {
                    let n = min(t.data.count - i, chunk.count / size)
                    chunk.withUnsafeMutableBytes { out in
                        for k in 0..<n {
                            let x = t.data[i + k]
                            switch t.dtype {
                            case .F32: out.storeBytes(of: x.bitPattern.littleEndian, toByteOffset: 4 * k, as: UInt32.self)
                            case .F16: out.storeBytes(of: HalfFloat.bits(from: x).littleEndian, toByteOffset: 2 * k, as: UInt16.self)
                            default: out.storeBytes(of: bfloat16Bits(x).littleEndian, toByteOffset: 2 * k, as: UInt16.self)
                            }
                        }
                    }
                    try chunk.withUnsafeBytes { try w.write(UnsafeRawBufferPointer(rebasing: $0[0..<(n * size)])) }
                    i += n
                }
            }
        }
    }

    /// Float → bfloat16 with round-to-nearest-even; NaN stays NaN.
    static func bfloat16Bits(_ x: Float) -> UInt16 { BFloat16(x).bits }
}
