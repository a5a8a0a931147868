import Foundation

#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// One HTTP exchange at a time over Foundation's URLSession, without following redirects (the
/// caller decides, per hop, which headers go to the next host), with an idle timeout: a request
/// is given up when the server sends nothing for `timeout` seconds, however long the whole
/// download takes.
final class HTTPClient {
    /// What came back: the status, the headers (names in lower case) and, for answers other than
    /// 2xx, the start of the body (for the Hub's error message).
    struct Response {
        let status: Int
        let headers: [String: String]
        let url: URL
        var errorBody = Data()

        /// The header `name` (any case).
        func header(_ name: String) -> String? { headers[name.lowercased()] }
        /// True for 301, 302, 303, 307 and 308 with a Location.
        var isRedirect: Bool { [301, 302, 303, 307, 308].contains(status) && header("location") != nil }
    }

    let timeout: TimeInterval
    /// A user agent naming the program, as the Hub asks of its clients.
    let userAgent = "rlhf/0.1.0"

    init(timeout: TimeInterval) { self.timeout = timeout }

    /// Sends one request and waits for its answer. The body of a 2xx answer goes to `body` chunk by
    /// chunk as it arrives, with the status (an error thrown there ends the transfer and is rethrown); other
    /// answers keep their first 64 KiB in `errorBody`.
    func send(_ method: String, _ url: URL, headers: [String: String], body: ((Int, Data) throws -> Void)? = nil) throws -> Response {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.setValue(userAgent, forHTTPHeaderField: "User-Agent")
        // The real size of each file, not a compressed one.
        request.setValue("identity", forHTTPHeaderField: "Accept-Encoding")
        for (k, v) in headers { request.setValue(v, forHTTPHeaderField: k) }
        let exchange = Exchange(body: body)
        let config = URLSessionConfiguration.ephemeral
        // The idle watchdog below does the timing: URLSession's own limits only as a backstop.
        config.timeoutIntervalForRequest = max(timeout * 4, 60)
        config.timeoutIntervalForResource = 7 * 86_400
        config.urlCache = nil
        config.httpCookieStorage = nil
        config.httpShouldSetCookies = false
        let queue = OperationQueue()
        queue.maxConcurrentOperationCount = 1
        let session = URLSession(configuration: config, delegate: exchange, delegateQueue: queue)
        defer { session.finishTasksAndInvalidate() }
        let task = session.dataTask(with: request)
        exchange.lastActivity.withLock { $0 = Date() }
        task.resume()
        // Wait, checking for silence from the server every tenth of a second.
        while exchange.done.wait(timeout: .now() + 0.1) == .timedOut {
            let idle = Date().timeIntervalSince(exchange.lastActivity.withLock { $0 })
            if idle > timeout {
                exchange.timedOut.withLock { $0 = true }
                task.cancel()
                _ = exchange.done.wait(timeout: .now() + 5)
                break
            }
        }
        if exchange.timedOut.withLock({ $0 }) {
            throw HubError("\(url.host ?? "the server") sent nothing for \(Int(timeout)) seconds (HF_HUB_DOWNLOAD_TIMEOUT); try again later")
        }
        return try exchange.result(url: url)
    }

    /// The state of one exchange, filled in on URLSession's delegate queue.
    private final class Exchange: NSObject, URLSessionDataDelegate, @unchecked Sendable {
        let body: ((Int, Data) throws -> Void)?
        let done = DispatchSemaphore(value: 0)
        let lastActivity = Locked(Date())
        let timedOut = Locked(false)
        private var response: HTTPURLResponse?
        private var error: Error?
        private var sinkError: Error?
        private var errorBody = Data()
        private let state = NSLock()

        init(body: ((Int, Data) throws -> Void)?) { self.body = body }

        func result(url: URL) throws -> Response {
            state.lock()
            defer { state.unlock() }
            if let sinkError { throw sinkError }
            if let error {
                throw HubError("\(url.host ?? "the server"): \(Self.describe(error))")
            }
            guard let r = response else { throw HubError("\(url.host ?? "the server") sent no answer") }
            var headers: [String: String] = [:]
            for (k, v) in r.allHeaderFields {
                if let k = k as? String, let v = v as? String { headers[k.lowercased()] = v }
            }
            return Response(status: r.statusCode, headers: headers, url: r.url ?? url, errorBody: errorBody)
        }

        static func describe(_ error: Error) -> String {
            let e = error as NSError
            if e.domain == NSURLErrorDomain {
                switch e.code {
                case NSURLErrorNetworkConnectionLost: return "the connection was cut during the transfer"
                case NSURLErrorCannotConnectToHost: return "cannot connect (is the address right and the server up?)"
                case NSURLErrorCannotFindHost, NSURLErrorDNSLookupFailed: return "unknown host"
                case NSURLErrorNotConnectedToInternet: return "no network connection"
                case NSURLErrorTimedOut: return "the request timed out"
                case NSURLErrorSecureConnectionFailed, NSURLErrorServerCertificateUntrusted, NSURLErrorServerCertificateHasBadDate:
                    return "the secure (TLS) connection failed: \(e.localizedDescription)"
                default: break
                }
            }
            return e.localizedDescription
        }

        // Redirects are the caller's to follow: stop at each one.
        func urlSession(
            _ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
            newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void
        ) {
            lastActivity.withLock { $0 = Date() }
            completionHandler(nil)
        }

        func urlSession(
            _ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
            completionHandler: @escaping (URLSession.ResponseDisposition) -> Void
        ) {
            lastActivity.withLock { $0 = Date() }
            state.lock()
            self.response = response as? HTTPURLResponse
            state.unlock()
            completionHandler(.allow)
        }

        func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
            lastActivity.withLock { $0 = Date() }
            state.lock()
            let status = response?.statusCode ?? 0
            let failed = sinkError != nil
            state.unlock()
            if failed { return }
            if (200..<300).contains(status), let body {
                do { try body(status, data) } catch {
                    state.lock()
                    sinkError = error
                    state.unlock()
                    dataTask.cancel()
                }
            } else if errorBody.count < 65_536 {
                errorBody.append(data.prefix(65_536 - errorBody.count))
            }
        }

        func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
            state.lock()
            if response == nil, let r = task.response as? HTTPURLResponse { response = r }
            if sinkError == nil { self.error = error }
            state.unlock()
            done.signal()
        }
    }
}

/// A value shared between threads behind a lock.
final class Locked<T>: @unchecked Sendable {
    private var value: T
    private let lock = NSLock()
    init(_ value: T) { self.value = value }
    func withLock<R>(_ body: (inout T) throws -> R) rethrows -> R {
        lock.lock()
        defer { lock.unlock() }
        return try body(&value)
    }
}
