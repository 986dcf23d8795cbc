import DrawdownCore
import DrawdownService
import Hummingbird
import Logging
import Metrics
import NIOCore
import Prometheus

/// What the API reads and writes: the running processor's status, the ledger index, command
/// intake (nil when the command topic is not consumed), the metrics registry.
public struct APIDependencies: Sendable {
    public var status: ProcessorStatus
    public var ledger: CustomerLedgerIndex
    public var commands: CommandIntake?
    public var metrics: PrometheusCollectorRegistry
    /// `DRAWDOWN_API_TOKEN`: when set, every `/v1/` route needs `Authorization: Bearer <token>`.
    public var token: String?

    public init(
        status: ProcessorStatus, ledger: CustomerLedgerIndex, commands: CommandIntake?, metrics: PrometheusCollectorRegistry,
        token: String?
    ) {
        self.status = status
        self.ledger = ledger
        self.commands = commands
        self.metrics = metrics
        self.token = token
    }
}

/// The routes of `drawdown run --http` (docs/operations.md, "HTTP API").
public enum APIRouter {
    /// Ledger page sizes.
    public static let pageLimitDefault = 100
    public static let pageLimitMax = 1_000
    /// A command body above this is refused before it is read further (the engine's own limit).
    static let commandBytesMax = MessageLimits.recordBytesMax
    /// `POST /v1/commands` answers, by `result`: `accepted`, `rejected`, `unavailable`.
    public static let commandsMetric = "drawdown_api_commands_total"

    public static func make(_ deps: APIDependencies, logger: Logger) -> Router<BasicRequestContext> {
        let router = Router(context: BasicRequestContext.self)

        router.get("healthz") { _, _ in
            json(.ok, #"{"status":"alive","phase":"\#(deps.status.phase.rawValue)"}"# + "\n")
        }
        router.get("readyz") { _, _ in
            let status = deps.status
            let body = #"{"ready":\#(status.isReady),"phase":"\#(status.phase.rawValue)","assigned_partitions":\#(status.assignedPartitions),"last_durable_batch":\#(status.lastDurableBatch)}"# + "\n"
            return json(status.isReady ? .ok : .serviceUnavailable, body)
        }
        router.get("metrics") { _, _ in
            var out: [UInt8] = []
            out.reserveCapacity(16_384)
            deps.metrics.emit(into: &out)
            return Response(
                status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                body: ResponseBody(byteBuffer: ByteBuffer(bytes: out)))
        }

        let v1 = router.group("v1").add(middleware: BearerTokenMiddleware(token: deps.token))
        v1.get("customers/:id/balances") { _, context in
            let id = try context.parameters.require("id")
            guard let customer = deps.status.customer(id) else {
                return json(.notFound, APIJSON.error("unknown_customer", "no durable ledger entry for customer \(id)"))
            }
            return json(.ok, APIJSON.balances(customer))
        }
        v1.get("customers/:id/ledger") { request, context in
            let id = try context.parameters.require("id")
            let query = request.uri.queryParameters
            var limit = pageLimitDefault
            if let text = query["limit"] {
                guard let n = Int(text), n >= 1, n <= pageLimitMax else {
                    return json(.badRequest, APIJSON.error("invalid_limit", "limit must be an integer 1…\(pageLimitMax)"))
                }
                limit = n
            }
            var cursor: CustomerLedgerIndex.Cursor?
            if let text = query["after"] {
                guard let c = CustomerLedgerIndex.Cursor(text) else {
                    return json(.badRequest, APIJSON.error("invalid_cursor", "after must be a cursor from next_cursor (batch.partition.seq)"))
                }
                cursor = c
            }
            let through = deps.status.lastDurableBatch
            do {
                let page = try await deps.ledger.pageAsync(customer: id, after: cursor, limit: limit, through: through)
                return json(.ok, APIJSON.ledgerPage(customer: id, page: page))
            } catch {
                logger.error("ledger page for a customer failed: \(error)")
                return json(.internalServerError, APIJSON.error("ledger_unreadable", "\(error)"))
            }
        }
        v1.post("commands") { request, _ in
            guard let commands = deps.commands else {
                return json(.serviceUnavailable, APIJSON.error("no_command_topic", "this processor consumes no command topic"))
            }
            var request = request
            let buffer: ByteBuffer
            do {
                buffer = try await request.collectBody(upTo: commandBytesMax)
            } catch {
                return json(.contentTooLarge, APIJSON.error("too_large", "a command is at most \(commandBytesMax) bytes"))
            }
            let body = Array(buffer.readableBytesView)
            let outcome = await commands.submit(body)
            Counter(label: commandsMetric, dimensions: [("result", outcome.metricResult)]).increment()
            switch outcome {
            case .accepted(let id, let customer, let partition, let offset):
                var out: [UInt8] = []
                out.append(contentsOf: #"{"accepted":true,"id":"#.utf8)
                JSONWriter.appendString(id, to: &out)
                out.append(contentsOf: #","customer":"#.utf8)
                JSONWriter.appendString(customer, to: &out)
                out.append(contentsOf: #","topic":"#.utf8)
                JSONWriter.appendString(commands.topic, to: &out)
                out.append(contentsOf: #","partition":\#(partition),"offset":\#(offset.map(String.init) ?? "null")}"#.utf8)
                out.append(0x0A)
                return json(.accepted, out)
            case .rejected(let reason, let detail):
                return json(.badRequest, APIJSON.error(reason, detail))
            case .unavailable(let detail):
                return json(.serviceUnavailable, APIJSON.error("unavailable", detail))
            }
        }
        return router
    }

    static func json(_ status: HTTPResponse.Status, _ bytes: [UInt8]) -> Response {
        Response(
            status: status, headers: [.contentType: "application/json"],
            body: ResponseBody(byteBuffer: ByteBuffer(bytes: bytes)))
    }

    static func json(_ status: HTTPResponse.Status, _ text: String) -> Response { json(status, Array(text.utf8)) }
}

/// `Authorization: Bearer <token>` on every route it wraps, compared in constant time; 401
/// without it. No token configured: everything passes (see docs/operations.md: never expose
/// the API like that).
struct BearerTokenMiddleware<Context: RequestContext>: RouterMiddleware {
    let token: [UInt8]?

    init(token: String?) { self.token = token.map { Array($0.utf8) } }

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        guard let token else { return try await next(request, context) }
        let given = request.headers[.authorization].flatMap { header -> [UInt8]? in
            let prefix = "Bearer "
            guard header.hasPrefix(prefix) else { return nil }
            return Array(header.utf8.dropFirst(prefix.utf8.count))
        }
        guard let given, Self.constantTimeEqual(given, token) else {
            var response = APIRouter.json(.unauthorized, APIJSON.error("unauthorized", "a valid Authorization: Bearer token is required"))
            response.headers[.wwwAuthenticate] = #"Bearer realm="drawdown""#
            return response
        }
        return try await next(request, context)
    }

    /// Time depends only on the lengths, never on where the bytes differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(truncatingIfNeeded: a.count ^ b.count)
        for i in 0..<b.count { difference |= (i < a.count ? a[i] : 0) ^ b[i] }
        return difference == 0 && a.count == b.count
    }
}
