import ArgumentParser
import BrokerClient
import BrokerCore
import Foundation
import JSON

/// `--wait`: polls an allocation until it is placed or has failed, with a progress line on
/// stderr when that is a terminal.
enum AllocationWaiter {
    static let interval = Duration.milliseconds(500)

    /// Prints the allocation, once placed when `wait` asks for it (`allocate` and `get`).
    static func show(_ allocation: JSONValue, waiting wait: Bool, timeout: Double, client: BrokerClient, printer: Printer) async throws {
        let shown = wait ? try await self.wait(for: allocation, client: client, printer: printer, timeout: timeout) : allocation
        try await Allocations.show(shown, client: client, printer: printer)
    }

    /// The allocation once `active` or `partial`. An `unschedulable` one is printed and exits 3,
    /// one that ended otherwise exits 1, and one still pending after `timeout` seconds exits 4.
    static func wait(for first: JSONValue, client: BrokerClient, printer: Printer, timeout: Double) async throws -> JSONValue {
        let started = ContinuousClock.now
        let deadline = started + .milliseconds(Int64(timeout * 1000))
        let progress = Terminal.stderrIsTTY
        let colour = Terminal.colour(onTTY: progress)
        var allocation = first
        var frame = 0
        func clearLine() { if progress { Terminal.write("\r\u{1B}[2K", to: .standardError) } }
        while true {
            let id = allocation.text("id")
            let status = allocation["status"]?.stringValue ?? "?"
            let known = AllocationStatus(rawValue: status)
            if known?.holdsLease == true {
                clearLine()
                return allocation
            }
            if known?.hasEnded != false {
                clearLine()
                try printer.print(allocation) { Tables.allocation($0, colour: printer.colour) }
                let reasons = (allocation["decisions"]?.arrayValue ?? []).map { "\($0.text("region")): \($0.text("reason"))" }
                Terminal.error("allocation \(id) is \(status)" + (reasons.isEmpty ? "" : " (\(reasons.joined(separator: "; ")))"))
                throw known == .unschedulable ? ClientExit.insufficientCapacity : ClientExit.failure
            }
            let waited = (ContinuousClock.now - started).components.seconds
            if ContinuousClock.now >= deadline {
                clearLine()
                try printer.print(allocation) { Tables.allocation($0, colour: printer.colour) }
                Terminal.error(
                    "timed out after \(waited)s waiting for allocation \(id) (\(status), \(Tables.placed(allocation)) placed); "
                        + "it stays queued: 'gpubroker allocations release \(id)' withdraws it")
                throw ClientExit.timedOut
            }
            if progress {
                Terminal.write("\r\u{1B}[2K" + line(allocation, waited: waited, frame: frame, colour: colour), to: .standardError)
                frame += 1
            }
            try await Task.sleep(for: interval)
            do {
                allocation = try await client.allocation(id)
            } catch {
                clearLine()
                throw error
            }
        }
    }

    /// "⠹ 3f9a6c1e pending · 0/4 placed · queue position 2 · 12s (deadline in 59m48s)"
    static func line(_ allocation: JSONValue, waited: Int64, frame: Int, colour: Bool) -> String {
        let spinner = Array("⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏")
        var parts = [
            "\(spinner[frame % spinner.count]) \(allocation.text("id").suffix(8)) "
                + Style.of(state: allocation.text("status")).apply(allocation.text("status"), colour: colour),
            "\(Tables.placed(allocation)) placed",
        ]
        // The queue position, where the broker answers one (not every version does).
        if let position = allocation["queuePosition"] { parts.append("queue position \(position.cellText)") }
        var elapsed = "\(waited)s"
        if let deadline = allocation["queueDeadline"]?.stringValue { elapsed += " (deadline \(age(deadline)))" }
        parts.append(elapsed)
        return parts.joined(separator: " · ")
    }
}
