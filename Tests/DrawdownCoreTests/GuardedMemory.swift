#if canImport(Glibc)
import Glibc
#endif

/// A page of memory followed by an inaccessible one: bytes copied to the end of the first
/// page are a buffer of exactly their length, and a read one byte past it faults (the test
/// process dies, so the test fails) instead of reading whatever an array's spare capacity
/// or the next allocation holds.
final class GuardedMemory {
    private let base: UnsafeMutableRawPointer
    private let page: Int

    init() {
        page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let mapped = mmap(nil, 2 * page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0)
        guard let mapped, mapped != UnsafeMutableRawPointer(bitPattern: -1) else { fatalError("mmap failed") }
        precondition(mprotect(mapped + page, page, PROT_NONE) == 0, "mprotect failed")
        base = mapped
    }

    deinit { munmap(base, 2 * page) }

    /// `body` over a copy of `bytes` that ends where the inaccessible page begins.
    func withGuarded<R>(_ bytes: [UInt8], _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
        precondition(bytes.count <= page)
        let start = base + page - bytes.count
        bytes.withUnsafeBytes { source in
            if let from = source.baseAddress { start.copyMemory(from: from, byteCount: source.count) }
        }
        return body(UnsafeBufferPointer(start: start.assumingMemoryBound(to: UInt8.self), count: bytes.count))
    }
}
