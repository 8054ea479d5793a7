/// A five-character SQLSTATE code as reported by the server (`PG_DIAG_SQLSTATE`).
///
/// Named constants follow PostgreSQL's Appendix A; compare with `==` or switch on them.
public struct SQLState: RawRepresentable, Hashable, Sendable, CustomStringConvertible {
    public let rawValue: String

    public init(rawValue: String) {
        self.rawValue = rawValue
    }

    /// The two-character class, e.g. `"08"` for connection exceptions.
    public var errorClass: String { String(rawValue.prefix(2)) }

    public var description: String { rawValue }

    // Class 08: connection exception
    public static let connectionException = SQLState(rawValue: "08000")
    public static let connectionDoesNotExist = SQLState(rawValue: "08003")
    public static let connectionFailure = SQLState(rawValue: "08006")
    public static let sqlclientUnableToEstablishSQLConnection = SQLState(rawValue: "08001")
    public static let sqlserverRejectedEstablishmentOfSQLConnection = SQLState(rawValue: "08004")
    public static let protocolViolation = SQLState(rawValue: "08P01")
    // Class 0A / 21 / 22: features, cardinality, data
    public static let featureNotSupported = SQLState(rawValue: "0A000")
    public static let cardinalityViolation = SQLState(rawValue: "21000")
    public static let dataException = SQLState(rawValue: "22000")
    public static let stringDataRightTruncation = SQLState(rawValue: "22001")
    public static let numericValueOutOfRange = SQLState(rawValue: "22003")
    public static let nullValueNotAllowed = SQLState(rawValue: "22004")
    public static let invalidDatetimeFormat = SQLState(rawValue: "22007")
    public static let datetimeFieldOverflow = SQLState(rawValue: "22008")
    public static let divisionByZero = SQLState(rawValue: "22012")
    public static let invalidTextRepresentation = SQLState(rawValue: "22P02")
    public static let invalidParameterValue = SQLState(rawValue: "22023")
    public static let invalidJSONText = SQLState(rawValue: "22P05")
    // Class 23: integrity constraint violation
    public static let integrityConstraintViolation = SQLState(rawValue: "23000")
    public static let restrictViolation = SQLState(rawValue: "23001")
    public static let notNullViolation = SQLState(rawValue: "23502")
    public static let foreignKeyViolation = SQLState(rawValue: "23503")
    public static let uniqueViolation = SQLState(rawValue: "23505")
    public static let checkViolation = SQLState(rawValue: "23514")
    public static let exclusionViolation = SQLState(rawValue: "23P01")
    // Class 25: invalid transaction state
    public static let invalidTransactionState = SQLState(rawValue: "25000")
    public static let activeSQLTransaction = SQLState(rawValue: "25001")
    public static let readOnlySQLTransaction = SQLState(rawValue: "25006")
    public static let noActiveSQLTransaction = SQLState(rawValue: "25P01")
    public static let inFailedSQLTransaction = SQLState(rawValue: "25P02")
    public static let idleInTransactionSessionTimeout = SQLState(rawValue: "25P03")
    // Class 28: invalid authorization
    public static let invalidAuthorizationSpecification = SQLState(rawValue: "28000")
    public static let invalidPassword = SQLState(rawValue: "28P01")
    // Class 3D / 3F: catalog
    public static let invalidCatalogName = SQLState(rawValue: "3D000")
    public static let invalidSchemaName = SQLState(rawValue: "3F000")
    // Class 40: transaction rollback
    public static let transactionRollback = SQLState(rawValue: "40000")
    public static let serializationFailure = SQLState(rawValue: "40001")
    public static let statementCompletionUnknown = SQLState(rawValue: "40003")
    public static let deadlockDetected = SQLState(rawValue: "40P01")
    // Class 42: syntax error or access rule violation
    public static let syntaxErrorOrAccessRuleViolation = SQLState(rawValue: "42000")
    public static let syntaxError = SQLState(rawValue: "42601")
    public static let insufficientPrivilege = SQLState(rawValue: "42501")
    public static let undefinedColumn = SQLState(rawValue: "42703")
    public static let undefinedFunction = SQLState(rawValue: "42883")
    public static let undefinedTable = SQLState(rawValue: "42P01")
    public static let undefinedParameter = SQLState(rawValue: "42P02")
    public static let undefinedObject = SQLState(rawValue: "42704")
    public static let duplicateColumn = SQLState(rawValue: "42701")
    public static let duplicateObject = SQLState(rawValue: "42710")
    public static let duplicateTable = SQLState(rawValue: "42P07")
    public static let duplicateSchema = SQLState(rawValue: "42P06")
    public static let ambiguousColumn = SQLState(rawValue: "42702")
    public static let datatypeMismatch = SQLState(rawValue: "42804")
    public static let indeterminateDatatype = SQLState(rawValue: "42P18")
    // Class 53 / 54: resources, limits
    public static let insufficientResources = SQLState(rawValue: "53000")
    public static let diskFull = SQLState(rawValue: "53100")
    public static let outOfMemory = SQLState(rawValue: "53200")
    public static let tooManyConnections = SQLState(rawValue: "53300")
    public static let programLimitExceeded = SQLState(rawValue: "54000")
    // Class 55: object not in prerequisite state
    public static let objectNotInPrerequisiteState = SQLState(rawValue: "55000")
    public static let objectInUse = SQLState(rawValue: "55006")
    public static let lockNotAvailable = SQLState(rawValue: "55P03")
    // Class 57: operator intervention
    public static let operatorIntervention = SQLState(rawValue: "57000")
    public static let queryCanceled = SQLState(rawValue: "57014")
    public static let adminShutdown = SQLState(rawValue: "57P01")
    public static let crashShutdown = SQLState(rawValue: "57P02")
    public static let cannotConnectNow = SQLState(rawValue: "57P03")
    public static let databaseDropped = SQLState(rawValue: "57P04")
    public static let idleSessionTimeout = SQLState(rawValue: "57P05")
    // Class 58 / P0 / XX
    public static let systemError = SQLState(rawValue: "58000")
    public static let ioError = SQLState(rawValue: "58030")
    public static let raiseException = SQLState(rawValue: "P0001")
    public static let internalError = SQLState(rawValue: "XX000")
    // Class GB: gpubroker's own, raised by the functions and triggers of its migrations
    /// A pool no longer has what a grant's plan counted on (or its tenant changed): plan again.
    public static let planNoLongerFits = SQLState(rawValue: "GB001")
    /// An UPDATE, DELETE or TRUNCATE of the append-only ledger (migration 4).
    public static let ledgerAppendOnly = SQLState(rawValue: "GB002")
    /// A statement would raise a tenant's usage past its quota (migration 5).
    public static let quotaExceeded = SQLState(rawValue: "GB003")
    /// A statement would commit a tenant's spend or GPU-hours past its monthly budget
    /// (migration 10); the detail is the problem as JSON.
    public static let budgetExceeded = SQLState(rawValue: "GB004")

    /// 40001 or 40P01: the whole transaction may succeed when run again.
    public var isRetryableTransactionFailure: Bool {
        self == .serializationFailure || self == .deadlockDetected
    }

    /// Class 08, 57P01…57P05, 25006: the session (or this server's role) is gone; use another connection.
    public var isConnectionProblem: Bool {
        errorClass == "08"
            || self == .adminShutdown || self == .crashShutdown || self == .cannotConnectNow
            || self == .databaseDropped || self == .idleSessionTimeout
            || self == .readOnlySQLTransaction
    }
}
