-- definitions/invariants.sql: one primary region; the append-only ledger.
BEGIN;
\ir fixtures.psql
SELECT plan(9);
-- Each trigger runs its function.
SELECT trigger_is('regions', 'regions_one_primary', 'gpb_check_primary_region');
SELECT trigger_is('ledger', 'ledger_append_only', 'gpb_ledger_append_only');
SELECT trigger_is('ledger', 'ledger_no_truncate', 'gpb_ledger_append_only');
-- regions_one_primary (gpb_check_primary_region), checked at commit: made immediate here.
SET CONSTRAINTS regions_one_primary IMMEDIATE;
SELECT throws_ok($$UPDATE regions SET is_primary = false WHERE id = 'ra'$$, '23514', 'regions exist but none is the primary region',
                 'demoting the only primary is refused (check_violation)');
SELECT lives_ok($$SET CONSTRAINTS regions_one_primary DEFERRED;
                  UPDATE regions SET is_primary = false WHERE id = 'ra'; UPDATE regions SET is_primary = true WHERE id = 'rb';
                  SET CONSTRAINTS regions_one_primary IMMEDIATE$$,
                'moving the primary in two statements passes at the check');
SELECT lives_ok($$DELETE FROM pools; DELETE FROM regions$$, 'no regions at all: no primary needed');
-- ledger_append_only, ledger_no_truncate (gpb_ledger_append_only)
INSERT INTO ledger (kind, region_id, pool_id, delta, actor) VALUES ('reserved', 'ra', 't4', 1, 'test');
SELECT throws_ok($$UPDATE ledger SET delta = 2$$, 'GB002', 'the ledger is append-only: UPDATE refused', 'an UPDATE is refused with GB002');
SELECT throws_ok($$TRUNCATE ledger$$, 'GB002', 'the ledger is append-only: TRUNCATE refused', 'TRUNCATE is refused with GB002');
SELECT is((SELECT count(*) FROM ledger), 1::bigint, 'the row stays');
SELECT * FROM finish();
ROLLBACK;
