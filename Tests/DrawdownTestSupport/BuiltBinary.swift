import Foundation

/// Where the built `drawdown` executable lives: `DRAWDOWN_BIN` when set, else beside the
/// test bundle (SwiftPM puts both in `.build/<config>/`). `make test` builds it first.
public func drawdownBinaryURL() -> URL {
    if let path = ProcessInfo.processInfo.environment["DRAWDOWN_BIN"], !path.isEmpty {
        return URL(fileURLWithPath: path)
    }
    var dir = Bundle.main.bundleURL
    for _ in 0..<4 {
        let candidate = dir.appendingPathComponent("drawdown")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
        dir = dir.deletingLastPathComponent()
    }
    for bundle in Bundle.allBundles where bundle.bundlePath.hasSuffix(".xctest") {
        let candidate = bundle.bundleURL.deletingLastPathComponent().appendingPathComponent("drawdown")
        if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
    }
    // Fall back to the conventional debug location relative to the package root.
    let root = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    return root.appendingPathComponent(".build/debug/drawdown")
}

/// The repository's root folder (for `../shared` and fixtures).
public func repositoryRootURL() -> URL {
    URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

/// The result of running a subprocess to completion.
public struct ProcessResult: Sendable {
    public var status: Int32
    public var stdout: Data
    public var stderr: Data
    public var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
    public var stderrText: String { String(decoding: stderr, as: UTF8.self) }
}

/// Runs `executable` with `arguments`, feeding `stdin`, and waits for it.
/// Output is drained on background threads so large outputs cannot dead-lock the pipes.
public func runProcess(
    _ executable: URL, _ arguments: [String], stdin: Data? = nil,
    environment: [String: String]? = nil
) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let environment { process.environment = environment }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    let inPipe = Pipe()
    process.standardInput = stdin == nil ? FileHandle.nullDevice : inPipe
    try process.run()
    let group = DispatchGroup()
    let collected = CollectedOutput()
    DispatchQueue.global().async(group: group) { collected.setOut(out.fileHandleForReading.readDataToEndOfFile()) }
    DispatchQueue.global().async(group: group) { collected.setErr(err.fileHandleForReading.readDataToEndOfFile()) }
    if let stdin {
        inPipe.fileHandleForWriting.write(stdin)
        try? inPipe.fileHandleForWriting.close()
    }
    process.waitUntilExit()
    group.wait()
    return ProcessResult(status: process.terminationStatus, stdout: collected.out, stderr: collected.err)
}

/// Output gathered by two reader threads; the lock makes the hand-over safe.
private final class CollectedOutput: @unchecked Sendable {
    private let lock = NSLock()
    private var _out = Data(), _err = Data()
    var out: Data { lock.withLock { _out } }
    var err: Data { lock.withLock { _err } }
    func setOut(_ d: Data) { lock.withLock { _out = d } }
    func setErr(_ d: Data) { lock.withLock { _err = d } }
}
