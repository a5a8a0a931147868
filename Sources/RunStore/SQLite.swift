import CSQLite
import Foundation

/// A failure of the run database, with a message for the user.
public struct StoreError: Error, CustomStringConvertible, Equatable {
    /// What went wrong and, where possible, what to do.
    public let description: String
    /// An error with this message.
    public init(_ message: String) { description = message }
}

private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A value bound to a statement parameter.
enum SQLValue {
    case int(Int64), double(Double), text(String), blob([UInt8]), null
}

/// One SQLite connection. Not shared between threads: each process (or thread) opens its own.
final class Connection {
    private(set) var handle: OpaquePointer?
    let path: String

    /// Opens (creating when `create`) the database at `path` with WAL journaling, foreign keys,
    /// full fsync on commit and a busy timeout, so that several processes can share one run.
    init(path: String, create: Bool, busyTimeoutMs: Int32 = 15_000) throws {
        self.path = path
        var db: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | (create ? SQLITE_OPEN_CREATE : 0) | SQLITE_OPEN_NOMUTEX
        let rc = sqlite3_open_v2(path, &db, flags, nil)
        guard rc == SQLITE_OK, let db else {
            let msg = db.map { String(cString: sqlite3_errmsg($0)) } ?? "error \(rc)"
            sqlite3_close(db)
            throw StoreError("\(path): cannot open the run database (\(msg))")
        }
        handle = db
        sqlite3_busy_timeout(db, busyTimeoutMs)
        sqlite3_extended_result_codes(db, 1)
        do {
            // A file that is not a database shows up at the first statement.
            try execute("PRAGMA foreign_keys = ON")
            let mode = try scalarText("PRAGMA journal_mode = WAL")
            if mode?.lowercased() != "wal" { throw StoreError("\(path): could not switch to WAL journaling (got \(mode ?? "nothing"))") }
            try execute("PRAGMA synchronous = FULL")
        } catch let e as StoreError {
            sqlite3_close(db); handle = nil
            throw StoreError(e.description.contains(path) ? e.description : "\(path): \(e.description)")
        }
    }

    deinit { if let handle { sqlite3_close_v2(handle) } }

    var errorMessage: String { handle.map { String(cString: sqlite3_errmsg($0)) } ?? "closed" }

    /// Runs statements that take no parameters (schema text, pragmas).
    func execute(_ sql: String) throws {
        var err: UnsafeMutablePointer<CChar>?
        let rc = sqlite3_exec(handle, sql, nil, nil, &err)
        if rc != SQLITE_OK {
            let msg = err.map { String(cString: $0) } ?? errorMessage
            sqlite3_free(err)
            throw Self.error(rc, msg, path, systemErrno: sqlite3_system_errno(handle))
        }
    }

    /// Extended SQLite codes of a failed write: SQLITE_IOERR_WRITE, _FSYNC, _TRUNCATE, _SHMSIZE.
    static let writeFailures: Set<Int32> = [10 | 3 << 8, 10 | 4 << 8, 10 | 6 << 8, 10 | 19 << 8]

    static func error(_ rc: Int32, _ msg: String, _ path: String, systemErrno: Int32 = 0) -> StoreError {
        // SQLite rolls back the statement's transaction on a failed write; say so, and why.
        let rolledBack = "this change was rolled back and everything committed before it is intact; free space (or lift the limit) and rerun"
        switch rc & 0xFF {
        case SQLITE_IOERR where Self.writeFailures.contains(rc):
            let why = systemErrno != 0 ? String(cString: strerror(systemErrno)) : "is the disk full, or a file-size limit reached?"
            return StoreError("\(path): a write to the database failed (\(why)); \(rolledBack)")
        case SQLITE_FULL: return StoreError("\(path): the disk is full (\(msg)); \(rolledBack)")
        case SQLITE_NOTADB: return StoreError("\(path) is not an SQLite database (or is corrupt)")
        case SQLITE_CORRUPT: return StoreError("\(path): the database is corrupt (\(msg))")
        case SQLITE_BUSY, SQLITE_LOCKED: return StoreError("\(path): the database stayed locked by another process for too long (\(msg))")
        case SQLITE_READONLY:
            return StoreError(
                "\(path): the database is read-only (\(msg)); rlhf writes to a run (and to run.sqlite-wal and -shm beside it) even to read it, so the run folder must be writable: fix its permissions, or copy the run folder somewhere writable"
            )
        default:
            return StoreError(
                "\(path): database error: \(msg)"
                    + (systemErrno != 0 && rc & 0xFF == SQLITE_IOERR ? " (\(String(cString: strerror(systemErrno))))" : ""))
        }
    }

    /// Prepares `sql` with `params` bound in order.
    func prepare(_ sql: String, _ params: [SQLValue] = []) throws -> Statement {
        var stmt: OpaquePointer?
        let rc = sqlite3_prepare_v2(handle, sql, -1, &stmt, nil)
        guard rc == SQLITE_OK, let stmt else { throw Self.error(rc, errorMessage, path, systemErrno: sqlite3_system_errno(handle)) }
        let s = Statement(stmt, self)
        try s.bind(params)
        return s
    }

    /// Runs one write statement; returns the number of rows changed.
    @discardableResult
    func run(_ sql: String, _ params: [SQLValue] = []) throws -> Int {
        let s = try prepare(sql, params)
        while try s.step() {}
        return Int(sqlite3_changes(handle))
    }

    /// The rowid of the last insert.
    var lastInsertId: Int64 { sqlite3_last_insert_rowid(handle) }

    /// Every row of a query, mapped.
    func query<T>(_ sql: String, _ params: [SQLValue] = [], _ map: (Statement) throws -> T) throws -> [T] {
        let s = try prepare(sql, params)
        var out: [T] = []
        while try s.step() { out.append(try map(s)) }
        return out
    }

    func scalarInt(_ sql: String, _ params: [SQLValue] = []) throws -> Int64? {
        try query(sql, params) { $0.isNull(0) ? nil : $0.int(0) }.first ?? nil
    }

    func scalarText(_ sql: String, _ params: [SQLValue] = []) throws -> String? {
        try query(sql, params) { $0.isNull(0) ? nil : $0.text(0) }.first ?? nil
    }

    /// Runs `body` inside BEGIN IMMEDIATE … COMMIT; any error rolls everything back.
    func transaction<T>(_ body: () throws -> T) throws -> T {
        try execute("BEGIN IMMEDIATE")
        do {
            let v = try body()
            try execute("COMMIT")
            return v
        } catch {
            try? execute("ROLLBACK")
            throw error
        }
    }
}

/// A prepared statement.
final class Statement {
    private let stmt: OpaquePointer
    private let conn: Connection
    init(_ stmt: OpaquePointer, _ conn: Connection) { self.stmt = stmt; self.conn = conn }
    deinit { sqlite3_finalize(stmt) }

    func bind(_ params: [SQLValue]) throws {
        for (i, p) in params.enumerated() {
            let idx = Int32(i + 1)
            let rc: Int32
            switch p {
            case .int(let v): rc = sqlite3_bind_int64(stmt, idx, v)
            case .double(let v): rc = v.isNaN ? sqlite3_bind_null(stmt, idx) : sqlite3_bind_double(stmt, idx, v)
            case .text(let v): rc = sqlite3_bind_text(stmt, idx, v, -1, transient)
            case .blob(let v): rc = v.withUnsafeBytes { sqlite3_bind_blob(stmt, idx, $0.baseAddress, Int32($0.count), transient) }
            case .null: rc = sqlite3_bind_null(stmt, idx)
            }
            guard rc == SQLITE_OK else { throw Connection.error(rc, conn.errorMessage, conn.path, systemErrno: sqlite3_system_errno(conn.handle)) }
        }
    }

    /// Advances; true while there is a row.
    func step() throws -> Bool {
        let rc = sqlite3_step(stmt)
        if rc == SQLITE_ROW { return true }
        if rc == SQLITE_DONE { return false }
        throw Connection.error(rc, conn.errorMessage, conn.path, systemErrno: sqlite3_system_errno(conn.handle))
    }

    func isNull(_ i: Int32) -> Bool { sqlite3_column_type(stmt, i) == SQLITE_NULL }
    func int(_ i: Int32) -> Int64 { sqlite3_column_int64(stmt, i) }
    func double(_ i: Int32) -> Double { sqlite3_column_double(stmt, i) }
    func text(_ i: Int32) -> String {
        guard let p = sqlite3_column_text(stmt, i) else { return "" }
        let n = Int(sqlite3_column_bytes(stmt, i))
        return String(decoding: UnsafeBufferPointer(start: p, count: n), as: UTF8.self)
    }
    func optionalText(_ i: Int32) -> String? { isNull(i) ? nil : text(i) }
    func optionalInt(_ i: Int32) -> Int64? { isNull(i) ? nil : int(i) }
    func optionalDouble(_ i: Int32) -> Double? { isNull(i) ? nil : double(i) }
    func blob(_ i: Int32) -> [UInt8] {
        let n = Int(sqlite3_column_bytes(stmt, i))
        guard n > 0, let p = sqlite3_column_blob(stmt, i) else { return [] }
        return Array(UnsafeRawBufferPointer(start: p, count: n))
    }
}
