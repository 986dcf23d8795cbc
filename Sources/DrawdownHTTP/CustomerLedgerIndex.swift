import Dispatch
import DrawdownCore
import DrawdownLedger
import DrawdownService
import Synchronization

/// Serves one customer's ledger entries, page by page, from the durable ledger on disk while
/// `drawdown run` appends to it.
///
/// It follows the ledger (`LedgerFollower`: read-only, no lock, each new record read once)
/// up to the last batch the pipeline reports durable, and keeps an index of which batches
/// hold entries of each customer, and where each batch's record starts. A page reads only
/// those records, and none for batches whose decoded entries are still in the cache (the most
/// recent ones, `cacheEntriesMax` entries). Memory: one batch number per (customer, batch
/// holding an entry of theirs), at most 8 bytes per ledger entry, one location per batch,
/// and the cache.
///
/// Cursor: `batch.partition.seq` of the last entry a page returned — stable, because the
/// ledger is append-only and `(partition, seq)` identifies an entry.
public final class CustomerLedgerIndex: Sendable {
    public struct Cursor: Sendable, Equatable, CustomStringConvertible {
        public var batch: UInt64
        public var partition: Int32
        public var seq: UInt64

        public init(batch: UInt64, partition: Int32, seq: UInt64) {
            self.batch = batch
            self.partition = partition
            self.seq = seq
        }

        public init?(_ text: Substring) {
            let parts = text.split(separator: ".", omittingEmptySubsequences: false)
            guard parts.count == 3, let b = UInt64(parts[0]), let p = Int32(parts[1]), p >= 0, let s = UInt64(parts[2]) else {
                return nil
            }
            self.init(batch: b, partition: p, seq: s)
        }

        public var description: String { "\(batch).\(partition).\(seq)" }
    }

    public struct Page: Sendable {
        public var entries: [(batch: UInt64, partition: Int32, entry: LedgerEntry)]
        /// The cursor of the last entry returned (the one given, when none was).
        public var nextCursor: Cursor?
        /// More entries of the customer follow, durable now.
        public var hasMore: Bool
        /// The last durable batch the index had read when the page was made.
        public var throughBatch: UInt64
    }

    /// One batch's entries, by partition section, without its input records.
    typealias BatchEntries = [(partition: Int32, entries: [LedgerEntry])]

    private struct State {
        var follower: LedgerFollower
        var locations: [UInt64: LedgerFollower.Location] = [:]
        var batchesByCustomer: [String: [UInt64]] = [:]
        /// Decoded entries of recent batches, oldest evicted first (`cacheEntriesMax`).
        var cache: [UInt64: BatchEntries] = [:]
        var cacheOrder: [UInt64] = []
        var cacheHead = 0
        var cachedEntries = 0

        mutating func remember(_ number: UInt64, _ entries: BatchEntries, max: Int) {
            guard cache[number] == nil else { return }
            cache[number] = entries
            cacheOrder.append(number)
            cachedEntries += entries.reduce(0) { $0 + $1.entries.count }
            while cachedEntries > max, cacheHead < cacheOrder.count {
                let old = cacheOrder[cacheHead]
                cacheHead += 1
                cachedEntries -= cache.removeValue(forKey: old)?.reduce(0) { $0 + $1.entries.count } ?? 0
            }
            if cacheHead > 1_024, cacheHead * 2 > cacheOrder.count {
                cacheOrder.removeFirst(cacheHead)
                cacheHead = 0
            }
        }
    }

    /// Ledger entries kept decoded in memory (about 200 bytes each): pages over recent
    /// batches read no file.
    public let cacheEntriesMax: Int

    private let state: Mutex<State>
    private let queue = DispatchQueue(label: "drawdown.http.ledger-index")

    public init(dataDirectory: String, io: any StorageIO, cacheEntriesMax: Int = 200_000) {
        state = Mutex(State(follower: LedgerFollower(dataDirectory: dataDirectory, io: io)))
        self.cacheEntriesMax = cacheEntriesMax
    }

    /// Reads the batches after the last one indexed, up to `through`. Blocking.
    public func catchUp(through: UInt64) throws {
        try state.withLock { try catchUp(&$0, through: through) }
    }

    private func catchUp(_ s: inout State, through: UInt64) throws {
        while let (batch, location) = try s.follower.next(through: through) {
            s.locations[batch.number] = location
            let entries = try Self.entries(of: batch)
            for section in entries {
                for entry in section.entries where s.batchesByCustomer[entry.customer]?.last != batch.number {
                    s.batchesByCustomer[entry.customer, default: []].append(batch.number)
                }
            }
            if !entries.isEmpty { s.remember(batch.number, entries, max: cacheEntriesMax) }
        }
    }

    private static func entries(of batch: LedgerBatch) throws -> BatchEntries {
        guard batch.kind == .entries, !batch.payload.isEmpty else { return [] }
        return try BatchPayload.decode(batch.payload).sections.compactMap { $0.entries.isEmpty ? nil : ($0.partition, $0.entries) }
    }

    /// Up to `limit` entries of `customer` after `cursor` (from the first when nil), in ledger
    /// order, from batches durable through `through`. Blocking.
    public func page(customer: String, after cursor: Cursor?, limit: Int, through: UInt64) throws -> Page {
        try state.withLock { s in
            try catchUp(&s, through: through)
            var page = Page(entries: [], nextCursor: cursor, hasMore: false, throughBatch: s.follower.lastNumber)
            guard let batches = s.batchesByCustomer[customer] else { return page }
            // First batch at or after the cursor's.
            var lo = 0, hi = batches.count
            let startBatch = cursor?.batch ?? 0
            while lo < hi {
                let mid = (lo + hi) / 2
                if batches[mid] < startBatch { lo = mid + 1 } else { hi = mid }
            }
            for number in batches[lo...] {
                let sections: BatchEntries
                if let cached = s.cache[number] {
                    sections = cached
                } else {
                    guard let location = s.locations[number] else { continue }
                    sections = try Self.entries(of: try s.follower.read(at: location))
                    s.remember(number, sections, max: cacheEntriesMax)
                }
                // In the cursor's batch, skip up to and including the cursor's entry.
                var skipping = cursor.map { $0.batch == number } ?? false
                for section in sections {
                    for entry in section.entries where entry.customer == customer {
                        if skipping {
                            if section.partition == cursor!.partition && entry.seq == cursor!.seq { skipping = false }
                            continue
                        }
                        if page.entries.count == limit {
                            page.hasMore = true
                            return page
                        }
                        page.entries.append((number, section.partition, entry))
                        page.nextCursor = Cursor(batch: number, partition: section.partition, seq: entry.seq)
                    }
                }
            }
            return page
        }
    }

    /// `page` on the index's own queue, off Swift's cooperative pool.
    func pageAsync(customer: String, after cursor: Cursor?, limit: Int, through: UInt64) async throws -> Page {
        try await withCheckedThrowingContinuation { continuation in
            queue.async {
                continuation.resume(with: Result { try self.page(customer: customer, after: cursor, limit: limit, through: through) })
            }
        }
    }
}
