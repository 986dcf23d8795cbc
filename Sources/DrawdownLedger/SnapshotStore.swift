import Synchronization

/// A snapshot of the engine's state as of the end of batch `coversThroughBatch`.
public struct Snapshot: Sendable, Equatable {
    public let coversThroughBatch: UInt64
    /// The ledger's chain hash at `coversThroughBatch`: ties the snapshot to one history.
    public let chainHash: LedgerHash
    /// The engine's encoded state (opaque here).
    public let state: [UInt8]
    public let file: String
}

/// The newest good snapshot, and the newer ones that were skipped (and why).
public struct SnapshotLoad: Sendable {
    public let snapshot: Snapshot?
    public let skipped: [LedgerProblem]
}

/// Snapshot files under `<data dir>/snapshots/`, one per covered batch:
/// `<20-digit batch>.snap`. Each is written to a temporary file, fsynced, renamed into place and
/// the directory fsynced, so a snapshot file either exists whole or not at all. The newest
/// `snapshotsRetainedMax` are kept.
///
/// File layout (little-endian; docs/ledger-format.md):
///
///     0   4  magic "DDSN"
///     4   4  CRC32C of bytes [8, file length)
///     8   2  format version (1)
///     10  6  reserved (0)
///     16  8  file length
///     24  8  covers through batch
///     32  8  uncompressed state length
///     40  32 chain hash at that batch
///     72  .. zstd frame of the state
public final class SnapshotStore: Sendable {
    static let headerByteCount = 72
    static let magic: UInt32 = 0x4E53_4444  // "DDSN" read as little-endian
    static let formatVersion: UInt16 = 1
    static let suffix = ".snap"
    static let tempSuffix = ".snap.tmp"

    public let directory: String
    public let limits: LedgerLimits
    private let io: any StorageIO
    private let zstd: Mutex<Zstd>

    /// Opens (creating when missing) `<dataDirectory>/snapshots` and removes temporary files left
    /// by a crash mid-write.
    public init(dataDirectory: String, limits: LedgerLimits = .default, io: any StorageIO = POSIXStorageIO()) throws {
        self.directory = dataDirectory + "/snapshots"
        self.limits = limits
        self.io = io
        self.zstd = Mutex(Zstd(level: limits.zstdLevel))
        do {
            try io.makeDirectory(dataDirectory)
            try io.makeDirectory(directory)
            try io.syncDirectory(dataDirectory)
            var removed = false
            for name in try io.listDirectory(directory) where name.hasSuffix(Self.tempSuffix) {
                try io.removeFile(directory + "/" + name)
                removed = true
            }
            if removed { try io.syncDirectory(directory) }
        } catch {
            throw LedgerError.wrapping(error)
        }
    }

    static func fileName(batch: UInt64) -> String { NumberedFileName.make(batch, suffix: suffix) }

    static func parse(_ name: String) -> UInt64? { NumberedFileName.parse(name, suffix: suffix) }

    /// The batches covered by the snapshot files present, oldest first.
    public func batchesCovered() throws -> [UInt64] {
        do {
            return try io.listDirectory(directory).compactMap(Self.parse).sorted()
        } catch {
            throw LedgerError.wrapping(error)
        }
    }

    /// Writes a snapshot durably, then deletes all but the newest `snapshotsRetainedMax`.
    /// Returns the file's path.
    @discardableResult
    public func write(_ state: [UInt8], coversThroughBatch batch: UInt64, chainHash: LedgerHash) throws -> String {
        precondition(batch >= 1, "a snapshot covers at least batch 1")
        guard state.count <= limits.snapshotBytesMax else {
            throw LedgerError.invalidBatch("snapshot of \(state.count) bytes, more than \(limits.snapshotBytesMax)")
        }
        var file = [UInt8](repeating: 0, count: Self.headerByteCount)
        do {
            try zstd.withLock { z throws in
                try state.withUnsafeBytes { raw throws in try z.compress(raw, appendingTo: &file) }
            }
        } catch {
            throw LedgerError.invalidBatch("snapshot: \(error)")
        }
        var w = ByteWriter(capacity: Self.headerByteCount)
        w.write(Self.magic)
        w.write(UInt32(0))
        w.write(Self.formatVersion)
        w.write(UInt16(0))
        w.write(UInt32(0))
        w.write(UInt64(file.count))
        w.write(batch)
        w.write(UInt64(state.count))
        w.write(bytes: chainHash.bytes)
        precondition(w.bytes.count == Self.headerByteCount)
        file.replaceSubrange(0..<Self.headerByteCount, with: w.bytes)
        let crc = file.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }
        withUnsafeBytes(of: crc.littleEndian) { file.replaceSubrange(4..<8, with: $0) }
        assert(decode(file, path: "(in memory)") == .success(Snapshot(
            coversThroughBatch: batch, chainHash: chainHash, state: state, file: "(in memory)")))

        let name = Self.fileName(batch: batch)
        let path = directory + "/" + name
        let temp = directory + "/" + name + ".tmp"
        do {
            try io.removeFile(temp)
            let fd = try io.openForWriting(temp, create: true, exclusive: true)
            do {
                try writeFully(io, fd, file, at: 0)
                try io.fsync(fd)
            } catch {
                io.close(fd)
                try? io.removeFile(temp)
                throw error
            }
            io.close(fd)
            try io.rename(temp, to: path)
            try io.syncDirectory(directory)
            try retain()
        } catch {
            throw LedgerError.wrapping(error)
        }
        return path
    }

    /// Deletes all but the newest `snapshotsRetainedMax` snapshot files.
    private func retain() throws {
        let all = try io.listDirectory(directory).compactMap(Self.parse).sorted()
        guard all.count > limits.snapshotsRetainedMax else { return }
        for batch in all.dropLast(limits.snapshotsRetainedMax) {
            try io.removeFile(directory + "/" + Self.fileName(batch: batch))
        }
        try io.syncDirectory(directory)
    }

    /// The newest snapshot that reads back whole (magic, checksum, length, decompression), at or
    /// before batch `notAfter`; the newer ones that failed are reported in `skipped`.
    public func newestValid(notAfter: UInt64 = .max) throws -> SnapshotLoad {
        try newestValid(notAfter: notAfter) { _ in nil }
    }

    /// The newest good snapshot that also agrees with `ledger`: it covers a batch the ledger has,
    /// and its chain hash is the ledger's hash at that batch.
    public func newestValid(matching ledger: LedgerStore) throws -> SnapshotLoad {
        try newestValid(matching: ledger, notAfter: ledger.lastBatchNumber)
    }

    /// The newest good snapshot that agrees with `ledger` and covers no batch after `notAfter`
    /// (a replay that must start before a given batch).
    public func newestValid(matching ledger: LedgerStore, notAfter: UInt64) throws -> SnapshotLoad {
        try newestValid(notAfter: min(notAfter, ledger.lastBatchNumber)) { snapshot in
            let hash = try ledger.hash(ofBatch: snapshot.coversThroughBatch)
            guard hash == snapshot.chainHash else {
                return "chain hash \(snapshot.chainHash) differs from the ledger's \(hash?.description ?? "(none)") at batch \(snapshot.coversThroughBatch)"
            }
            return nil
        }
    }

    private func newestValid(notAfter: UInt64, check: (Snapshot) throws -> String?) throws -> SnapshotLoad {
        var skipped: [LedgerProblem] = []
        for batch in try batchesCovered().reversed() {
            let path = directory + "/" + Self.fileName(batch: batch)
            if batch > notAfter {
                skipped.append(LedgerProblem(batchNumber: batch, file: path, byteOffset: 0,
                                             reason: "covers batch \(batch), past the ledger's last batch \(notAfter)"))
                continue
            }
            let bytes: [UInt8]
            do {
                let fd = try io.openForReading(path)
                defer { io.close(fd) }
                let size = try io.fileSize(fd)
                let sizeMax = Int64(Self.headerByteCount + Zstd.compressBound(limits.snapshotBytesMax))
                guard size <= sizeMax else {
                    skipped.append(LedgerProblem(batchNumber: batch, file: path, byteOffset: 0, reason: "\(size) bytes is too large"))
                    continue
                }
                bytes = try readFully(io, fd, count: Int(size), at: 0)
            } catch {
                throw LedgerError.wrapping(error)
            }
            switch decode(bytes, path: path) {
            case .failure(let problem):
                skipped.append(problem)
            case .success(let snapshot):
                if snapshot.coversThroughBatch != batch {
                    skipped.append(LedgerProblem(batchNumber: batch, file: path, byteOffset: 24,
                                                 reason: "file named for batch \(batch) covers batch \(snapshot.coversThroughBatch)"))
                } else if let reason = try check(snapshot) {
                    skipped.append(LedgerProblem(batchNumber: batch, file: path, byteOffset: 0, reason: reason))
                } else {
                    return SnapshotLoad(snapshot: snapshot, skipped: skipped)
                }
            }
        }
        return SnapshotLoad(snapshot: nil, skipped: skipped)
    }

    private func decode(_ bytes: [UInt8], path: String) -> Result<Snapshot, LedgerProblem> {
        func fail(_ offset: Int64, _ reason: String, batch: UInt64? = nil) -> Result<Snapshot, LedgerProblem> {
            .failure(LedgerProblem(batchNumber: batch, file: path, byteOffset: offset, reason: reason))
        }
        guard bytes.count > Self.headerByteCount else { return fail(0, "short file: \(bytes.count) bytes") }
        var r = ByteReader(bytes)
        do {
            let magic: UInt32 = try r.read()
            guard magic == Self.magic else { return fail(0, "bad magic") }
            let stored: UInt32 = try r.read()
            let crc = bytes.withUnsafeBytes { CRC32C.checksum(UnsafeRawBufferPointer(rebasing: $0[8...])) }
            guard crc == stored else { return fail(4, "checksum mismatch (\(String(format32: stored, crc)))") }
            let version: UInt16 = try r.read()
            guard version == Self.formatVersion else { return fail(8, "format version \(version)") }
            let reserved16: UInt16 = try r.read()
            let reserved32: UInt32 = try r.read()
            guard reserved16 == 0 && reserved32 == 0 else { return fail(10, "reserved bytes set") }
            let length: UInt64 = try r.read()
            guard length == UInt64(bytes.count) else { return fail(16, "header says \(length) bytes, file has \(bytes.count)") }
            let batch: UInt64 = try r.read()
            let stateLength: UInt64 = try r.read()
            let hash = LedgerHash(bytes: try r.readBytes(LedgerHash.byteCount))
            guard stateLength <= UInt64(limits.snapshotBytesMax) else {
                return fail(32, "state of \(stateLength) bytes, more than \(limits.snapshotBytesMax)", batch: batch)
            }
            let state = try zstd.withLock { z throws in
                try bytes.withUnsafeBytes { raw throws in
                    try z.decompress(UnsafeRawBufferPointer(rebasing: raw[Self.headerByteCount...]),
                                     decompressedBytesMax: limits.snapshotBytesMax, expectedBytes: Int(stateLength))
                }
            }
            return .success(Snapshot(coversThroughBatch: batch, chainHash: hash, state: state, file: path))
        } catch {
            return fail(Int64(r.offset), "\(error)")
        }
    }
}
