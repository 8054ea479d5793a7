import Foundation
import MicroHTTP

#if canImport(Glibc)
import Glibc
#endif

/// A transport failure. `connectErrno` is set when the connection was never made
/// (nothing was sent); `received` counts response bytes read before the failure
/// (non-zero: a half-written answer).
public struct TransportError: Error, CustomStringConvertible {
    public var description: String
    public var connectErrno: Int32?
    public var received: Int = 0
}

public struct RawResponse: Sendable {
    public var status: Int
    public var headers: HTTPHeaders
    public var body: [UInt8]
    public var text: String { String(decoding: body, as: UTF8.self) }
}

/// A blocking HTTP/1.1 client over a POSIX socket, so tests control exactly what is
/// sent and when (pieces, half-sent requests, huge headers, many connections).
/// Use it from plain threads, never from the Swift cooperative pool.
public final class RawClient {
    public let fd: Int32
    private var buffer: [UInt8] = []
    private var closed = false

    public init(port: Int, timeoutSeconds: Int = 10) throws {
        fd = try Self.connect(port: port, timeoutSeconds: timeoutSeconds)
    }

    deinit { close() }

    /// Closes the socket once: a second close could hit a descriptor reused meanwhile.
    public func close() {
        if closed { return }
        closed = true
        Glibc.close(fd)
    }

    /// A connected socket with send and receive timeouts and TCP_NODELAY.
    public static func connect(port: Int, timeoutSeconds: Int) throws -> Int32 {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TransportError(description: "connect: socket errno \(errno)", connectErrno: errno) }
        var timeout = timeval(tv_sec: timeoutSeconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result != 0 {
            let code = errno
            Glibc.close(fd)
            throw TransportError(description: "connect: errno \(code)", connectErrno: code)
        }
        return fd
    }

    /// errno of a failed connect (e.g. ECONNREFUSED), or 0 when it succeeds (the socket is closed).
    public static func connectErrno(port: Int) -> Int32 {
        do {
            _ = try RawClient(port: port)
            return 0
        } catch let error as TransportError {
            return error.connectErrno ?? -1
        } catch {
            return -1
        }
    }

    public static func sendAll(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let written = bytes[offset...].withUnsafeBytes { Glibc.send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            guard written > 0 else { throw TransportError(description: "send: errno \(errno)") }
            offset += written
        }
    }

    public func send(_ bytes: [UInt8]) throws { try Self.sendAll(fd, bytes) }

    public func send(_ text: String) throws { try send(Array(text.utf8)) }

    private func fill() throws -> Bool {
        var chunk = [UInt8](repeating: 0, count: 65536)
        let count = chunk.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 {
            throw TransportError(description: "recv: errno \(errno) after \(buffer.count) bytes", received: buffer.count)
        }
        if count == 0 { return false }
        buffer.append(contentsOf: chunk[0..<count])
        return true
    }

    /// Reads one response; the body by `Content-Length` (none for HEAD), else until EOF.
    public func readResponse(head: Bool = false) throws -> RawResponse {
        var headerEnd: Int?
        while headerEnd == nil {
            if let end = Self.headerEnd(buffer) {
                headerEnd = end
            } else if try !fill() {
                throw TransportError(
                    description: "connection closed before a response header (\(buffer.count) bytes)", received: buffer.count)
            }
        }
        var response = try Self.parseHead(buffer[0..<headerEnd!])
        buffer.removeFirst(headerEnd! + 4)
        if !head { response.body = try readBody(of: response) }
        return response
    }

    /// The body of a response whose head `readResponse(head: true)` read: by its
    /// `Content-Length`, else until EOF.
    public func readBody(of head: RawResponse) throws -> [UInt8] {
        guard let length = head.headers["Content-Length"].flatMap({ Int($0) }) else {
            while try fill() {}
            defer { buffer = [] }
            return buffer
        }
        while buffer.count < length {
            if try !fill() {
                throw TransportError(description: "connection closed inside the body", received: buffer.count)
            }
        }
        defer { buffer.removeFirst(length) }
        return Array(buffer[0..<length])
    }

    /// Reads until `text` has arrived (a stream's event, say) and drops what came up to
    /// its end; throws at EOF or the receive timeout.
    public func read(through text: String) throws {
        let marker = Array(text.utf8)
        while true {
            if let end = buffer.firstRange(of: marker)?.upperBound {
                buffer.removeFirst(end)
                return
            }
            if try !fill() { throw TransportError(description: "connection closed before '\(text)'", received: buffer.count) }
        }
    }

    /// True when the server closed the connection (EOF) within the receive timeout.
    public func isClosedByPeer() -> Bool {
        (try? fill()) == false
    }

    /// One request on a fresh connection. `close`: ask the server to close after it.
    public static func request(
        port: Int, _ method: String, _ target: String, headers: [String] = [], body: [UInt8] = [],
        close: Bool = false, timeoutSeconds: Int = 10
    ) throws -> RawResponse {
        let client = try RawClient(port: port, timeoutSeconds: timeoutSeconds)
        var head = "\(method) \(target) HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        if close { head += "Connection: close\r\n" }
        for header in headers { head += header + "\r\n" }
        if !body.isEmpty || method == "POST" || method == "PUT" || method == "PATCH" {
            head += "Content-Length: \(body.count)\r\n"
        }
        head += "\r\n"
        try client.send(Array(head.utf8) + body)
        return try client.readResponse(head: method == "HEAD")
    }

    /// A whole response read to EOF.
    public static func parse(_ bytes: [UInt8]) throws -> RawResponse {
        guard let end = headerEnd(bytes) else {
            throw TransportError(description: "no complete response header (\(bytes.count) bytes)", received: bytes.count)
        }
        var response = try parseHead(bytes[0..<end])
        response.body = Array(bytes[(end + 4)...])
        if let length = response.headers["Content-Length"].flatMap({ Int($0) }) {
            guard response.body.count >= length else {
                throw TransportError(description: "truncated body", received: bytes.count)
            }
            response.body = Array(response.body.prefix(length))
        }
        return response
    }

    private static func headerEnd(_ bytes: [UInt8]) -> Int? {
        guard bytes.count >= 4 else { return nil }
        for start in 0...(bytes.count - 4)
        where bytes[start] == 13 && bytes[start + 1] == 10 && bytes[start + 2] == 13 && bytes[start + 3] == 10 {
            return start
        }
        return nil
    }

    private static func parseHead(_ bytes: ArraySlice<UInt8>) throws -> RawResponse {
        let lines = String(decoding: bytes, as: UTF8.self).components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else {
            throw TransportError(description: "bad status line: \(lines[0])")
        }
        var headers = HTTPHeaders()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.add(String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        return RawResponse(status: status, headers: headers, body: [])
    }
}

/// A test hands a client from the thread that opened it to another that reads it
/// (`onThread`), never to two at once: one user at a time is the invariant.
extension RawClient: @unchecked Sendable {}
