@testable import DrawdownCore
import Testing

/// Snapshot restore links each customer's grant lists as chains through the grants, so a
/// damaged list must be refused, not followed: a grant listed twice would make a cycle that
/// later walks never leave. The snapshots here are written field by field after
/// `EngineSnapshot.swift`: one customer `c` in `credits`, grants `g0` (active) and `g1`
/// (pending), and a second customer `d` with grant `g2`.
@Suite struct DamagedSnapshotTests {
    struct Lists {
        var cGrants: [Int] = [0, 1]
        var cDrawOrder: [Int] = [0, 1]
        var cPending: [Int] = [1]
        var g1Slot = 0
    }

    static let t0: Int64 = 1_700_000_000_000_000_000

    static func snapshot(_ lists: Lists) -> [UInt8] {
        var w = BinaryWriter()
        w.byte(PartitionEngine.snapshotVersion)
        w.signed(0)  // partition
        w.signed(t0)  // partition watermark
        w.varint(3)  // last seq
        w.varint(3)  // applied
        w.varint(0)  // duplicates
        w.varint(0)  // rejected
        w.varint(2)  // customers
        func customer(_ id: String, grants: [Int], drawOrder: [Int], pending: [Int], nextActivation: Int64) {
            w.string(id)
            w.signed(t0)
            for list in [grants, drawOrder, drawOrder.sorted(), pending] {
                w.varint(list.count)
                for g in list { w.varint(g) }
            }
            w.signed(Int64.max)  // next expiry
            w.signed(nextActivation)
            w.varint(1)  // currencies
            w.string("credits")
            w.credits(Credits(units: 5))  // available
            w.credits(.zero)  // overage
            w.varint(0)  // levels
            w.byte(0)  // exhausted
        }
        customer("c", grants: lists.cGrants, drawOrder: lists.cDrawOrder, pending: lists.cPending, nextActivation: t0 + 60)
        customer("d", grants: [2], drawOrder: [2], pending: [], nextActivation: Int64.max)
        w.varint(3)  // grants
        for (id, owner, slot, status, effective) in [
            ("g0", 0, 0, GrantStatus.active, t0), ("g1", 0, lists.g1Slot, .pending, t0 + 60), ("g2", 1, 0, .active, t0),
        ] {
            w.string(id)
            w.varint(owner)
            w.varint(slot)
            w.credits(Credits(units: 5))  // amount
            w.string("credits")
            w.varint(100)  // priority
            w.string("promotional")
            w.eventTime(EventTime(nanos: effective))
            w.byte(0)  // no expires_at
            w.byte(0)  // no meters
            w.credits(Credits(units: 5))  // remaining
            w.byte(status.rawValue)
            w.uint64(7)  // content hash
        }
        w.varint(0)  // expiry queue
        w.varint(DedupeTable.initialCapacity)
        w.varint(0)  // remembered keys
        return w.bytes
    }

    /// The transcription is the format: it restores, and the engine writes it back unchanged.
    @Test func theSoundSnapshotRestoresAndWritesBackTheSameBytes() throws {
        let bytes = Self.snapshot(Lists())
        let engine = try PartitionEngine(snapshot: bytes)
        #expect(engine.snapshot() == bytes)
        #expect(engine.pendingGrants(of: 0) == [1])
        #expect(engine.grantNumbers(of: 0) == [0, 1])
        #expect(engine.balances(customer: "c").map(\.available) == [Credits(units: 5)])
    }

    @Test(arguments: [
        ("a grant twice in a pending list", Lists(cPending: [1, 1])),
        ("grants out of apply order", Lists(cGrants: [1, 0])),
        ("a grant listed twice", Lists(cGrants: [0, 0, 1])),
        ("another customer's grant", Lists(cGrants: [0, 1, 2])),
        ("a currency slot the customer does not have", Lists(g1Slot: 1)),
    ])
    func aDamagedListIsRefused(_ damage: String, _ lists: Lists) {
        #expect(throws: BinaryReader.Damaged.self, "\(damage)") { _ = try PartitionEngine(snapshot: Self.snapshot(lists)) }
    }
}
