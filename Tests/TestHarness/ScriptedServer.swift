import Foundation
import Synchronization

#if canImport(Glibc)
import Glibc
#endif

/// A loopback HTTP/1.1 server that answers every request with one fixed response and
/// keeps each request's head, so a test can see what reached it (a redirect's target,
/// a webhook receiver standing for an internal service). One thread, one connection at a time.
public final class ScriptedServer: Sendable {
    public let port: Int
    private let fd: Int32
    private let heads = Mutex<[String]>([])

    /// `response(head)` is the whole response sent for a request with that head.
    public init(response: @escaping @Sendable (String) -> String) throws {
        let (fd, port) = try silentListener()
        self.fd = fd
        self.port = port
        Thread.detachNewThread { [self] in
            while true {
                let client = accept(fd, nil, nil)
                if client < 0 { return }  // closed by stop()
                var timeout = timeval(tv_sec: 5, tv_usec: 0)
                setsockopt(client, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                var received: [UInt8] = []
                var chunk = [UInt8](repeating: 0, count: 4096)
                while !received.containsHeadEnd {
                    let count = recv(client, &chunk, chunk.count, 0)
                    if count <= 0 { break }
                    received += chunk[0..<count]
                }
                let head = String(decoding: received, as: UTF8.self)
                heads.withLock { $0.append(head) }
                let answer = Array(response(head).utf8)
                _ = answer.withUnsafeBytes { send(client, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
                close(client)
            }
        }
    }

    /// The heads of the requests received so far.
    public var received: [String] { heads.withLock { $0 } }

    public func stop() {
        shutdown(fd, Int32(SHUT_RDWR))
        close(fd)
    }
}

extension [UInt8] {
    fileprivate var containsHeadEnd: Bool {
        count >= 4 && (0...(count - 4)).contains { self[$0] == 13 && self[$0 + 1] == 10 && self[$0 + 2] == 13 && self[$0 + 3] == 10 }
    }
}
