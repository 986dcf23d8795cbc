import Glibc

/// The system calls the ledger and snapshot stores make, so tests (and fault-injection runs of
/// the processor) can make any of them fail. Every method throws `StorageError` with errno.
public protocol StorageIO: Sendable {
    /// Opens for reading only.
    func openForReading(_ path: String) throws -> Int32
    /// Opens read-write; creates the file when `create` (failing if it exists when `exclusive`).
    func openForWriting(_ path: String, create: Bool, exclusive: Bool) throws -> Int32
    func close(_ fd: Int32)
    /// Reads up to `buffer.count` bytes at `offset`; returns how many (0 at end of file).
    func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int
    /// Writes some of `bytes` at `offset`; returns how many (callers loop on short writes).
    func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws -> Int
    func fdatasync(_ fd: Int32) throws
    func fsync(_ fd: Int32) throws
    func ftruncate(_ fd: Int32, length: Int64) throws
    func fileSize(_ fd: Int32) throws -> Int64
    /// Creates a directory; succeeds when it already exists.
    func makeDirectory(_ path: String) throws
    /// The names in a directory, without "." and "..".
    func listDirectory(_ path: String) throws -> [String]
    func rename(_ from: String, to: String) throws
    func removeFile(_ path: String) throws
    /// fsyncs a directory, making the creation, renaming or removal of its entries durable.
    func syncDirectory(_ path: String) throws
    /// Creates (if needed) and opens `path`, and takes an exclusive lock on it without
    /// waiting; returns the descriptor, which holds the lock until closed (or the process dies).
    /// Throws `StorageError` with `EWOULDBLOCK` when another holder has it.
    func lockExclusive(_ path: String) throws -> Int32
    /// Releases the lock `lockExclusive` took, then closes its descriptor. The explicit unlock
    /// matters: a child that another thread of this process is spawning holds a copy of every
    /// descriptor until it execs, and the lock belongs to the open file description, so a bare
    /// close() would leave it held until then.
    func unlockAndClose(_ fd: Int32)
}

/// `StorageIO` on the real file system through Glibc.
public struct POSIXStorageIO: StorageIO {
    public init() {}

    public func openForReading(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        if fd < 0 { throw StorageError(operation: "open", path: path, errno: errno) }
        return fd
    }

    public func openForWriting(_ path: String, create: Bool, exclusive: Bool) throws -> Int32 {
        var flags = O_RDWR | O_CLOEXEC
        if create { flags |= O_CREAT }
        if exclusive { flags |= O_EXCL }
        let fd = Glibc.open(path, flags, 0o644)
        if fd < 0 { throw StorageError(operation: "open", path: path, errno: errno) }
        return fd
    }

    public func close(_ fd: Int32) { _ = Glibc.close(fd) }

    public func pread(_ fd: Int32, into buffer: UnsafeMutableRawBufferPointer, at offset: Int64) throws -> Int {
        while true {
            let n = Glibc.pread(fd, buffer.baseAddress, buffer.count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR { throw StorageError(operation: "pread", path: "fd \(fd)", errno: errno) }
        }
    }

    public func pwrite(_ fd: Int32, _ bytes: UnsafeRawBufferPointer, at offset: Int64) throws -> Int {
        while true {
            let n = Glibc.pwrite(fd, bytes.baseAddress, bytes.count, off_t(offset))
            if n >= 0 { return n }
            if errno != EINTR { throw StorageError(operation: "pwrite", path: "fd \(fd)", errno: errno) }
        }
    }

    public func fdatasync(_ fd: Int32) throws {
        if Glibc.fdatasync(fd) != 0 { throw StorageError(operation: "fdatasync", path: "fd \(fd)", errno: errno) }
    }

    public func fsync(_ fd: Int32) throws {
        if Glibc.fsync(fd) != 0 { throw StorageError(operation: "fsync", path: "fd \(fd)", errno: errno) }
    }

    public func ftruncate(_ fd: Int32, length: Int64) throws {
        if Glibc.ftruncate(fd, off_t(length)) != 0 {
            throw StorageError(operation: "ftruncate", path: "fd \(fd)", errno: errno)
        }
    }

    public func fileSize(_ fd: Int32) throws -> Int64 {
        var st = stat()
        if Glibc.fstat(fd, &st) != 0 { throw StorageError(operation: "fstat", path: "fd \(fd)", errno: errno) }
        return Int64(st.st_size)
    }

    public func makeDirectory(_ path: String) throws {
        if Glibc.mkdir(path, 0o755) != 0 && errno != EEXIST {
            throw StorageError(operation: "mkdir", path: path, errno: errno)
        }
    }

    public func listDirectory(_ path: String) throws -> [String] {
        guard let dir = opendir(path) else { throw StorageError(operation: "opendir", path: path, errno: errno) }
        defer { closedir(dir) }
        var names: [String] = []
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { raw in
                String(decoding: raw.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name != "." && name != ".." { names.append(name) }
        }
        return names
    }

    public func rename(_ from: String, to: String) throws {
        if Glibc.rename(from, to) != 0 { throw StorageError(operation: "rename", path: "\(from) -> \(to)", errno: errno) }
    }

    public func removeFile(_ path: String) throws {
        if Glibc.unlink(path) != 0 && errno != ENOENT { throw StorageError(operation: "unlink", path: path, errno: errno) }
    }

    public func syncDirectory(_ path: String) throws {
        let fd = Glibc.open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        if fd < 0 { throw StorageError(operation: "open", path: path, errno: errno) }
        defer { _ = Glibc.close(fd) }
        if Glibc.fsync(fd) != 0 { throw StorageError(operation: "fsync", path: path, errno: errno) }
    }

    public func lockExclusive(_ path: String) throws -> Int32 {
        let fd = Glibc.open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        if fd < 0 { throw StorageError(operation: "open", path: path, errno: errno) }
        // An open-file-description lock: released when this descriptor closes or the process
        // dies, and it conflicts with a second open even within one process.
        var lock = flock()
        lock.l_type = Int16(F_WRLCK)
        lock.l_whence = Int16(SEEK_SET)
        lock.l_start = 0
        lock.l_len = 0
        if fcntl(fd, Self.ofdSetLock, &lock) != 0 {
            let e = errno
            _ = Glibc.close(fd)
            throw StorageError(operation: "lock", path: path, errno: e == EACCES ? EWOULDBLOCK : e)
        }
        return fd
    }

    public func unlockAndClose(_ fd: Int32) {
        var lock = flock()
        lock.l_type = Int16(F_UNLCK)
        lock.l_whence = Int16(SEEK_SET)
        _ = fcntl(fd, Self.ofdSetLock, &lock)
        _ = Glibc.close(fd)
    }

    /// F_OFD_SETLK (Linux, every architecture); Glibc hides it without _GNU_SOURCE.
    private static let ofdSetLock: Int32 = 37
}
