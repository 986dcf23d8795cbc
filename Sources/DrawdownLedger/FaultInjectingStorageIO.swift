import Glibc
import Synchronization

/// Wraps a `StorageIO` and makes chosen calls fail with EIO: for tests, and for fault-injection
/// runs of the processor. Faults are armed by count ("the 3rd fdatasync from now fails") and
/// fire once.
public final class FaultInjectingStorageIO: StorageIO {
    public enum Operation: String, Sendable, CaseIterable {
        case pwrite, fdatasync, fsync, ftruncate, syncDirectory, rename
    }

    public struct Fault: Sendable {
        public var operation: Operation
        /// How many calls of `operation` succeed before the failing one.
        public var after: Int
        /// For `pwrite`: write this many bytes of the buffer for real before failing (a torn write).
        public var tornBytes: Int
        public var errno: Int32

        public init(_ operation: Operation, after: Int = 0, tornBytes: Int = 0, errno: Int32 = EIO) {
            self.operation = operation
            self.after = after
            self.tornBytes = tornBytes
            self.errno = errno
        }
    }

    private let base: any StorageIO
    private let faults = Mutex<[Fault]>([])

    public init(wrapping base: any StorageIO = POSIXStorageIO()) {
        self.base = base
    }

    /// Arms a fault (several may be armed at once).
    public func arm(_ fault: Fault) {
        faults.withLock { $0.append(fault) }
    }

    public func disarmAll() {
        faults.withLock { $0.removeAll() }
    }

    /// Counts a call of `op` against every armed fault of that operation; returns the fault that
    /// fires now (at most one per call; another one due now fires at the next call).
    private func firing(_ op: Operation) -> Fault? {
        faults.withLock { list in
            var fired: Fault?
            var kept: [Fault] = []
            for var fault in list {
                if fault.operation != op {
                    kept.append(fault)
                } else if fault.after == 0 && fired == nil {
                    fired = fault
                } else {
                    fault.after = max(0, fault.after - 1)
                    kept.append(fault)
                }
            }
            list = kept
            return fired
        }
    }

    public func openForReading(_ path: String) throws -> Int32 { try base.openForReading(path) }

    public func openForWriting(_ path: String, create: Bool, exclusive: Bool) throws -> Int32 {
        try base.openForWriting(path, create: create, exclusive: exclusive)
    }

    public func close(_ fd: Int32) { base.close(fd) }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        try base.pread(fd, into: buffer, at: offset)
    }

    public func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws -> Int {
        if let fault = firing(.pwrite) {
            let torn = min(fault.tornBytes, bytes.count)
            if torn > 0 { _ = try base.pwrite(fd, UnsafeRawBufferPointer(rebasing: bytes[..<torn]), at: offset) }
            throw StorageError(operation: "pwrite (injected)", path: "fd \(fd)", errno: fault.errno)
        }
        return try base.pwrite(fd, bytes, at: offset)
    }

    public func fdatasync(_ fd: Int32) throws {
        if let fault = firing(.fdatasync) {
            throw StorageError(operation: "fdatasync (injected)", path: "fd \(fd)", errno: fault.errno)
        }
        try base.fdatasync(fd)
    }

    public func fsync(_ fd: Int32) throws {
        if let fault = firing(.fsync) { throw StorageError(operation: "fsync (injected)", path: "fd \(fd)", errno: fault.errno) }
        try base.fsync(fd)
    }

    public func ftruncate(_ fd: Int32, length: Int64) throws {
        if let fault = firing(.ftruncate) {
            throw StorageError(operation: "ftruncate (injected)", path: "fd \(fd)", errno: fault.errno)
        }
        try base.ftruncate(fd, length: length)
    }

    public func fileSize(_ fd: Int32) throws -> Int64 { try base.fileSize(fd) }

    public func makeDirectory(_ path: String) throws { try base.makeDirectory(path) }

    public func listDirectory(_ path: String) throws -> [String] { try base.listDirectory(path) }

    public func rename(_ from: String, to: String) throws {
        if let fault = firing(.rename) { throw StorageError(operation: "rename (injected)", path: from, errno: fault.errno) }
        try base.rename(from, to: to)
    }

    public func removeFile(_ path: String) throws { try base.removeFile(path) }

    public func lockExclusive(_ path: String) throws -> Int32 { try base.lockExclusive(path) }

    public func unlockAndClose(_ fd: Int32) { base.unlockAndClose(fd) }

    public func syncDirectory(_ path: String) throws {
        if let fault = firing(.syncDirectory) {
            throw StorageError(operation: "fsync directory (injected)", path: path, errno: fault.errno)
        }
        try base.syncDirectory(path)
    }
}
