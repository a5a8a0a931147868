import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Writes files so that a reader (or a crash) sees either the old file or the complete new one:
/// the bytes go to a temporary name in the same folder, are flushed with fsync, and the file is
/// renamed over the target; the folder is then synced so the rename itself is durable.
public enum AtomicFile {
    /// Writes `data` to `url` atomically.
    public static func write(_ data: Data, to url: URL) throws {
        try write(to: url) { w in try data.withUnsafeBytes { try w.write($0) } }
    }

    /// Streams a file to `url` atomically: `body` writes through the given writer.
    public static func write(to url: URL, _ body: (FileWriter) throws -> Void) throws {
        let dir = url.deletingLastPathComponent()
        let tmp = dir.appendingPathComponent(".\(url.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        let fd = open(tmp.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
        guard fd >= 0 else { throw FormatError("\(url.path): cannot create a temporary file in \(dir.path) (\(String(cString: strerror(errno))))") }
        let writer = FileWriter(fd: fd, path: url.path)
        do {
            try body(writer)
            guard fsync(fd) == 0 else { throw FormatError("\(url.path): fsync failed (\(String(cString: strerror(errno))))") }
            close(fd)
            guard rename(tmp.path, url.path) == 0 else { throw FormatError("\(url.path): rename failed (\(String(cString: strerror(errno))))") }
        } catch {
            close(fd)
            unlink(tmp.path)
            throw error
        }
        syncDirectory(dir)
    }

    /// Writes a folder whole: `body` fills a temporary sibling, which is synced and then takes
    /// `folder`'s place (an existing folder is moved aside first and removed last). On an error
    /// the temporary folder is removed, and the error names `folder` and says whether the folder
    /// there was left as it was or nothing was written.
    public static func replaceFolder(_ folder: URL, _ body: (URL) throws -> Void) throws {
        let fm = FileManager.default
        let parent = folder.deletingLastPathComponent()
        try fm.createDirectory(at: parent, withIntermediateDirectories: true)
        let tmp = parent.appendingPathComponent(".\(folder.lastPathComponent).tmp-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
        try fm.createDirectory(at: tmp, withIntermediateDirectories: false)
        do {
            try body(tmp)
            syncDirectory(tmp)
            var old: URL?
            if fm.fileExists(atPath: folder.path) {
                let o = parent.appendingPathComponent(".\(folder.lastPathComponent).old-\(getpid())-\(UInt32.random(in: 0...UInt32.max))")
                try fm.moveItem(at: folder, to: o)
                old = o
            }
            try fm.moveItem(at: tmp, to: folder)
            syncDirectory(parent)
            if let old { try? fm.removeItem(at: old) }
        } catch {
            try? fm.removeItem(at: tmp)
            // Name the folder being written, not its temporary name.
            let what = String(describing: error).replacingOccurrences(of: tmp.path, with: folder.path)
            throw FormatError("\(what); \(fm.fileExists(atPath: folder.path) ? "the folder there was left as it was" : "nothing was written")")
        }
    }

    /// Flushes a folder's entries (new names, renames) to disk.
    public static func syncDirectory(_ dir: URL) {
        let dfd = open(dir.path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if dfd >= 0 { _ = fsync(dfd); close(dfd) }
    }
}

/// Sequential writes to an open file descriptor, retrying short writes.
public final class FileWriter {
    let fd: Int32
    let path: String
    init(fd: Int32, path: String) { self.fd = fd; self.path = path }

    /// Writes all of `bytes`.
    public func write(_ bytes: UnsafeRawBufferPointer) throws {
        guard var p = bytes.baseAddress else { return }
        var left = bytes.count
        while left > 0 {
            let n = Glibc.write(fd, p, min(left, 1 << 30))
            if n < 0 {
                if errno == EINTR { continue }
                throw FormatError("\(path): write failed (\(String(cString: strerror(errno))))")
            }
            left -= n; p += n
        }
    }

    /// Writes the UTF-8 bytes of `s`.
    public func write(_ s: String) throws {
        var s = s
        try s.withUTF8 { try write(UnsafeRawBufferPointer($0)) }
    }
}
