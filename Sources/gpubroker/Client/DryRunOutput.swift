import ArgumentParser
import BrokerCore
import JSON

/// `--dry-run` on allocate, scale and renew: the broker's `dryRun=true`.
struct DryRunOption: ParsableArguments {
    @Flag(help: "Say what would happen (placement, price, quota and budget, queue, alternatives) and change nothing.")
    var dryRun = false

    /// Prints a dry run's answer. Exits as the real request would: 0 when it would be
    /// granted or queued, 3 when refused for capacity, 1 when refused otherwise.
    static func show(_ answer: JSONValue, printer: Printer) throws {
        try printer.print(answer) { Tables.dryRun($0, colour: printer.colour) }
        guard answer["outcome"]?.stringValue == DryRunOutcome.refused.rawValue else { return }
        throw answer["problem"]?["code"]?.stringValue == ProblemCode.insufficientCapacity.rawValue
            ? ClientExit.insufficientCapacity : ClientExit.failure
    }
}

extension Tables {
    static func dryRun(_ answer: JSONValue, colour: Bool) -> String {
        var details = Details()
        let outcome = answer.text("outcome")
        let style: Style = outcome == DryRunOutcome.granted.rawValue ? .good : outcome == DryRunOutcome.queued.rawValue ? .warn : .bad
        details.add("Dry run", Cell("would be \(outcome) (\(answer.text("status"))); nothing was changed", style))
        if let problem = answer["problem"] { details.add("Refusal", Cell(problem.text("detail"), .bad)) }
        details.add("Price per hour", Cell(answer.text("pricePerHour")))
        var text = details.render(colour: colour)
        let limits = answer["limits"]?.arrayValue ?? []
        if !limits.isEmpty {
            var table = Table("LIMIT", "MAX", "USED", "REQUESTED", "REMAINING")
            for limit in limits {
                let over = (limit["remaining"]?.numberValue ?? 0) < 0
                table.add(Cell(limit.text("name")), Cell(limit.text("limit")), Cell(limit.text("used")),
                          Cell(limit.text("requested")), Cell(limit.text("remaining"), over ? .bad : .plain))
            }
            text += "\n" + table.render(colour: colour)
        }
        if let allocation = answer["allocation"] {
            text += "\n" + Tables.allocation(allocation, colour: colour)
        } else {
            var table = Table("REGION", "REPLICAS", "DECISION")
            for decision in answer["decisions"]?.arrayValue ?? [] {
                table.add(Cell(decision.text("region")), Cell(decision.text("replicas")), Cell(decision.text("reason")))
            }
            text += "\n" + table.render(colour: colour)
        }
        if let queue = answer["queue"] { text += "\nQueue\n" + Tables.queue(queue, colour: colour) }
        return text
    }

    /// What a queued request could ask for instead to be granted now.
    static func alternatives(_ alternatives: [JSONValue], colour: Bool) -> String {
        guard !alternatives.isEmpty else { return "nothing fits now\n" }
        var table = Table("CHANGE", "TO", "REPLICAS", "PRICE/HOUR")
        for alternative in alternatives {
            let change = alternative.text("change")
            table.add(Cell(change), Cell(alternative.text(change)), Cell(alternative.text("placedReplicas")),
                      Cell(alternative.text("pricePerHour")))
        }
        return table.render(colour: colour)
    }
}
