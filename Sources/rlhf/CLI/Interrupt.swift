import Foundation

/// Ctrl-C handling for long stages: the first SIGINT asks the stage to stop after the batch in
/// flight (so nothing is half-written); a second one exits at once.
enum Interrupt {
    static func install() {
        signal(SIGINT) { _ in
            interruptRequests += 1
            if interruptRequests > 1 { _exit(130) }
            let msg = "\ninterrupt: finishing the current batch; press Ctrl-C again to stop now\n"
            msg.withCString { _ = write(2, $0, strlen($0)) }
        }
    }

    static var requested: Bool { interruptRequests > 0 }
}

nonisolated(unsafe) private var interruptRequests: Int32 = 0
