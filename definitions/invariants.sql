-- Invariants the broker keeps in Swift, kept by the database as well, so that no writer
-- (a new code path, a script, an operator's psql) can store a state the broker would
-- misread. Each is named: the store maps a violation to a domain error by its SQLSTATE
-- and constraint name. (The CHECK constraints live with their tables in migrations/.)

-- Exactly one primary region once any region exists. "At most one" is the unique
-- index regions_single_primary; "at least one" is checked at commit, because moving
-- the primary demotes one region and promotes another in two statements. (The store
-- serialises region writes on an advisory lock; this catches every other writer.)
CREATE FUNCTION gpb_check_primary_region()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM regions) AND NOT EXISTS (SELECT 1 FROM regions WHERE is_primary) THEN
        RAISE EXCEPTION 'regions exist but none is the primary region'
            USING ERRCODE = 'check_violation', CONSTRAINT = 'regions_one_primary';
    END IF;
    RETURN NULL;
END
$$;

CREATE CONSTRAINT TRIGGER regions_one_primary
    AFTER INSERT OR DELETE OR UPDATE OF is_primary ON regions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION gpb_check_primary_region();

-- The ledger is append-only: rows are never changed, and removed only as history.sql's
-- ledger_retire allows. SQLSTATE GB002.
CREATE FUNCTION gpb_ledger_append_only()
RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the ledger is append-only: % refused', TG_OP
        USING ERRCODE = 'GB002', CONSTRAINT = 'ledger_append_only';
END
$$;

CREATE TRIGGER ledger_append_only
    BEFORE UPDATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_append_only();

CREATE TRIGGER ledger_no_truncate
    BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION gpb_ledger_append_only();
