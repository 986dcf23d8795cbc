import Glibc

/// A failed system call: which, on what path, and errno.
public struct StorageError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let path: String
    public let errno: Int32

    public init(operation: String, path: String, errno: Int32) {
        self.operation = operation
        self.path = path
        self.errno = errno
    }

    public var description: String {
        "\(operation) \(path): \(String(cString: strerror(errno))) (errno \(errno))"
    }
}

/// Where a ledger or snapshot file is damaged, and how.
public struct LedgerProblem: Error, Sendable, CustomStringConvertible, Equatable {
    /// The batch the damage belongs to (from the record's header when readable, else the batch
    /// expected at that place); for a snapshot, the batch it covers.
    public let batchNumber: UInt64?
    public let file: String
    public let byteOffset: Int64
    public let reason: String

    public init(batchNumber: UInt64?, file: String, byteOffset: Int64, reason: String) {
        self.batchNumber = batchNumber
        self.file = file
        self.byteOffset = byteOffset
        self.reason = reason
    }

    public var description: String {
        let batch = batchNumber.map { "batch \($0)" } ?? "unknown batch"
        return "\(batch) in \(file) at byte \(byteOffset): \(reason)"
    }
}

public enum LedgerError: Error, CustomStringConvertible, Sendable {
    /// The ledger is damaged somewhere other than a torn tail; recovery refuses to guess.
    case corrupt(LedgerProblem)
    /// A system call failed.
    case io(StorageError)
    /// An earlier write or sync failed; the store takes no more appends (the processor must stop).
    case poisoned(reason: String)
    /// Another `LedgerStore` (in this or another process) has the ledger open.
    case alreadyOpen(lockFile: String)
    /// The caller handed in a batch that breaks the ledger's rules; nothing was written and the
    /// store is still usable.
    case invalidBatch(String)

    public var description: String {
        switch self {
        case .corrupt(let p): "ledger corrupt: \(p)"
        case .io(let e): "ledger I/O error: \(e)"
        case .poisoned(let reason): "ledger refuses appends after an earlier failure: \(reason)"
        case .invalidBatch(let reason): "invalid ledger batch: \(reason)"
        case .alreadyOpen(let lockFile): "the ledger is already open elsewhere (lock held on \(lockFile))"
        }
    }
}

extension LedgerError {
    /// `error` as a `LedgerError`: a failed system call becomes `.io`.
    static func wrapping(_ error: any Error) -> LedgerError {
        switch error {
        case let e as LedgerError: e
        case let e as StorageError: .io(e)
        default: .io(StorageError(operation: "\(error)", path: "", errno: 0))
        }
    }
}
