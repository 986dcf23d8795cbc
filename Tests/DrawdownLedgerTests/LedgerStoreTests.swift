import DrawdownTestSupport
import Glibc
import Testing
@testable import DrawdownLedger

@Suite struct LedgerStoreTests {
    @Test func randomBatchesRoundTripAcrossReopen() throws {
        let seed = testSeed(0x5EED_0001)
        print("LedgerStoreTests.randomBatchesRoundTripAcrossReopen seed \(seed) (replay with LEDGER_TEST_SEED=\(seed))")
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: seed)
        let written: [(LedgerBatch, LedgerHash)]
        do {
            let store = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
            #expect(store.lastBatchNumber == 0 && store.lastHash == .zero)
            written = try appendBatches(store, &gen, count: 200)
            #expect(try readAll(store) == written.map(\.0))
            #expect(store.lastHash == written.last!.1)
        }
        #expect(dir.segmentFiles().count > 5, "small segments roll")
        let store = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        #expect(store.recoveryReport.tornTail == nil)
        #expect(store.lastBatchNumber == 200)
        #expect(store.lastHash == written.last!.1)
        #expect(try readAll(store) == written.map(\.0))
        var rng = SeededGenerator(seed: seed)
        for _ in 0..<40 {
            let from = UInt64.random(in: 1...201, using: &rng)
            let tail = try readAll(store, from: from)
            #expect(tail == written.dropFirst(Int(from) - 1).map(\.0), "reading from \(from)")
            if from <= 200 { #expect(try store.hash(ofBatch: from) == written[Int(from) - 1].1) }
        }
        #expect(try store.hash(ofBatch: 201) == nil)
        #expect(LedgerStore.verify(dataDirectory: dir.path, limits: smallLimits).isEmpty)
        // What the store derives for restart: the offsets to seek to and the sequences to continue.
        #expect(store.nextOffsets == gen.offsets)
        for partition in Int32(0)..<8 { #expect(store.lastSequence(partition: partition) == gen.seq[partition] ?? 0) }
        // The chain continues after reopening.
        let more = try appendBatches(store, &gen, count: 3)
        #expect(store.lastBatchNumber == 203 && store.lastHash == more.last!.1)
    }

    @Test func segmentsRollAndAreNamedForTheirFirstBatch() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 3)
        gen.payloadBytesMax = 1_500
        let store = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        _ = try appendBatches(store, &gen, count: 40)
        let files = dir.segmentFiles()
        #expect(files.count >= 3)
        #expect(files.first == "00000000000000000001.seg")
        for file in files {
            let size = dir.read(dir.ledger + "/" + file).count
            let first = UInt64(file.dropLast(4))!
            let batches = try readAll(store, from: first)
            #expect(batches.first?.number == first)
            // A segment goes past the limit only when it holds a single record.
            if size > Int(smallLimits.segmentBytesMax) {
                let next = files.firstIndex(of: file)! + 1
                let nextFirst = next < files.count ? UInt64(files[next].dropLast(4))! : store.lastBatchNumber + 1
                #expect(nextFirst == first + 1)
            }
        }
    }

    @Test func oneStorePerLedger() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        do {
            let first = try LedgerStore.open(dataDirectory: dir.path)
            let error = #expect(throws: LedgerError.self) { try LedgerStore.open(dataDirectory: dir.path) }
            guard case .alreadyOpen = error else {
                Issue.record("expected alreadyOpen, got \(String(describing: error))")
                return
            }
            #expect(first.lastBatchNumber == 0)
        }
        #expect(try LedgerStore.open(dataDirectory: dir.path).lastBatchNumber == 0, "the lock goes with the store")
    }

    /// A child that another thread is spawning holds a copy of every descriptor until it execs
    /// (`dup` stands in for it here); the lock must go with the store all the same.
    @Test func unlockReleasesTheLockWhileACopyOfItsDescriptorIsStillOpen() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let io = POSIXStorageIO()
        let path = dir.path + "/LOCK"
        let fd = try io.lockExclusive(path)
        let copy = dup(fd)
        #expect(copy >= 0)
        defer { close(copy) }
        let error = #expect(throws: StorageError.self) { try io.lockExclusive(path) }
        #expect(error?.errno == EWOULDBLOCK)
        io.unlockAndClose(fd)
        io.unlockAndClose(try io.lockExclusive(path))
    }

    @Test func invalidBatchesAreRefusedWithoutPoisoning() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let store = try LedgerStore.open(dataDirectory: dir.path)
        let h1 = try store.append(LedgerBatch(
            number: 1, previousHash: .zero,
            positions: [InputPosition(topic: "usage", partition: 0, nextOffset: 10)],
            sequenceRanges: [SequenceRange(partition: 0, firstSeq: 1, lastSeq: 5)]))
        let bad: [(LedgerBatch, String)] = [
            (LedgerBatch(number: 3, previousHash: h1), "batch number 3"),
            (LedgerBatch(number: 2, previousHash: .zero), "broken chain"),
            (LedgerBatch(number: 2, previousHash: h1, sequenceRanges: [SequenceRange(partition: 0, firstSeq: 7, lastSeq: 9)]), "sequence starts at 7"),
            (LedgerBatch(number: 2, previousHash: h1, sequenceRanges: [SequenceRange(partition: 1, firstSeq: 2, lastSeq: 1)]), "empty"),
            (LedgerBatch(number: 2, previousHash: h1, positions: [InputPosition(topic: "usage", partition: 0, nextOffset: 9)]), "goes back"),
            (LedgerBatch(number: 2, previousHash: h1, positions: [
                InputPosition(topic: "usage", partition: 1, nextOffset: 1), InputPosition(topic: "usage", partition: 1, nextOffset: 2),
            ]), "listed twice"),
            (LedgerBatch(number: 2, previousHash: h1, positions: [InputPosition(topic: "", partition: 1, nextOffset: 1)]), "topic name"),
            (LedgerBatch(number: 2, previousHash: h1, eventTime: EventTimeRange(minNanos: 5, maxNanos: 4)), "inverted"),
        ]
        for (batch, words) in bad {
            let error = #expect(throws: LedgerError.self) { try store.append(batch) }
            guard case .invalidBatch(let reason) = error else {
                Issue.record("expected invalidBatch, got \(String(describing: error))")
                continue
            }
            #expect(reason.contains(words), "\(reason)")
        }
        #expect(store.poisonReason == nil)
        try store.append(LedgerBatch(number: 2, previousHash: h1, sequenceRanges: [SequenceRange(partition: 0, firstSeq: 6, lastSeq: 6)]))
        #expect(store.lastBatchNumber == 2 && store.lastSequence(partition: 0) == 6)
    }

    @Test func eventTimeLookupNeverSkipsAMatchingBatch() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 99)
        gen.payloadBytesMax = 50
        let store = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        let written = try appendBatches(store, &gen, count: 120).map(\.0)
        var rng = SeededGenerator(seed: 100)
        let times = written.compactMap { $0.eventTime?.maxNanos }
        for _ in 0..<200 {
            let t = Int64.random(in: (times.min()! - 10)...(times.max()! + 10), using: &rng)
            let start = store.firstBatchNumber(forEventTimeAtLeast: t)
            for b in written where (b.eventTime?.maxNanos ?? .min) >= t {
                #expect(b.number >= start, "t \(t): batch \(b.number) ends at or after it but the lookup starts at \(start)")
            }
        }
        #expect(store.firstBatchNumber(forEventTimeAtLeast: times.max()! + 1) == 121)
        #expect(store.firstBatchNumber(forEventTimeAtLeast: .min) == 1)
    }
}

@Suite struct StorageFaultTests {
    func openFaulty(_ dir: TempDirectory) throws -> (LedgerStore, FaultInjectingStorageIO) {
        let io = FaultInjectingStorageIO()
        return (try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits, io: io), io)
    }

    func expectPoisonedAfterFailure(_ fault: FaultInjectingStorageIO.Fault, alsoFailCut: Bool = false) throws {
        let dir = TempDirectory("fault-\(fault.operation)-\(alsoFailCut)")
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 5)
        // The failing store is gone before the ledger is opened again (it holds the lock).
        func failOnce() throws -> (good: [(LedgerBatch, LedgerHash)], failing: LedgerBatch)? {
            let (store, io) = try openFaulty(dir)
            let good = try appendBatches(store, &gen, count: 6)
            io.arm(fault)
            if alsoFailCut { io.arm(.init(.ftruncate)) }
            let failing = gen.next()
            let error = #expect(throws: LedgerError.self) { try store.append(failing) }
            guard case .io = error else {
                Issue.record("expected an I/O error, got \(String(describing: error))")
                return nil
            }
            #expect(store.poisonReason != nil)
            #expect(store.lastBatchNumber == 6)
            // Poisoned: even a valid batch is refused now, and no fault is left armed to blame.
            io.disarmAll()
            let refused = #expect(throws: LedgerError.self) { try store.append(failing) }
            guard case .poisoned = refused else {
                Issue.record("expected poisoned, got \(String(describing: refused))")
                return nil
            }
            return (good, failing)
        }
        guard let (good, failing) = try failOnce() else { return }
        let reopened = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        #expect(reopened.lastBatchNumber == 6)
        #expect(reopened.lastHash == good.last!.1)
        #expect(try readAll(reopened) == good.map(\.0))
        if alsoFailCut {
            #expect(reopened.recoveryReport.tornTail != nil, "the partial record stayed; recovery cut it")
        }
        try reopened.append(failing)
        #expect(reopened.lastBatchNumber == 7)
    }

    @Test func writeFailurePoisons() throws {
        try expectPoisonedAfterFailure(.init(.pwrite, tornBytes: 50))
    }

    @Test func writeFailureWhoseCutAlsoFailsIsCutByRecovery() throws {
        try expectPoisonedAfterFailure(.init(.pwrite, tornBytes: 120), alsoFailCut: true)
    }

    @Test func fdatasyncFailurePoisons() throws {
        try expectPoisonedAfterFailure(.init(.fdatasync))
    }

    @Test func fdatasyncFailureWithFailedCutLeavesAWholeRecordThatIsKept() throws {
        // The record was written whole and only its sync failed; if it cannot be cut, it is a
        // valid batch on disk and recovery keeps it (the ledger is the truth; nothing depended on it).
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 8)
        do {
            let (store, io) = try openFaulty(dir)
            _ = try appendBatches(store, &gen, count: 3)
            io.arm(.init(.fdatasync))
            io.arm(.init(.ftruncate))
            #expect(throws: LedgerError.self) { try store.append(gen.next()) }
        }
        let reopened = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        #expect(reopened.lastBatchNumber == 4)
        #expect(reopened.recoveryReport.tornTail == nil)
    }

    @Test func failureCreatingASegmentPoisons() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        var gen = BatchGenerator(seed: 9)
        do {
            let (store, io) = try openFaulty(dir)
            io.arm(.init(.syncDirectory))
            #expect(throws: LedgerError.self) { try store.append(gen.next()) }
            #expect(store.poisonReason != nil)
        }
        let reopened = try LedgerStore.open(dataDirectory: dir.path, limits: smallLimits)
        #expect(reopened.lastBatchNumber == 0)
    }
}

@Suite struct FaultInjectionTests {
    @Test func faultsFireAfterTheirCountOncePerCall() throws {
        let dir = TempDirectory()
        defer { dir.remove() }
        let io = FaultInjectingStorageIO()
        io.arm(.init(.fsync, after: 2))
        io.arm(.init(.fsync))
        io.arm(.init(.fsync))
        var outcomes: [Bool] = []
        for _ in 0..<5 {
            do {
                try io.syncDirectory(dir.path)  // not fsync: never fails
                let fd = try io.openForReading(dir.path)
                defer { io.close(fd) }
                try io.fsync(fd)
                outcomes.append(true)
            } catch {
                outcomes.append(false)
            }
        }
        #expect(outcomes == [false, false, false, true, true], "two due at once fire on successive calls; the third after two calls")
    }
}
