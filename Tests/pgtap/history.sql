-- definitions/history.sql: time-ordered ids; ledger rows removed only as retention may.
BEGIN;
\ir fixtures.psql
SELECT plan(7);
-- Each trigger runs its function.
SELECT trigger_is('ledger', 'ledger_retire', 'gpb_ledger_retire');
-- gpb_uuidv7
SELECT is(substr(replace(gpb_uuidv7('2026-01-01 00:00:00.123Z')::text, '-', ''), 1, 12),
          lpad(to_hex((extract(epoch FROM timestamptz '2026-01-01 00:00:00.123Z') * 1000)::bigint), 12, '0'),
          'gpb_uuidv7 starts with the Unix milliseconds');
SELECT is(substr(gpb_uuidv7()::text, 15, 1), '7', 'version 7');
SELECT ok(gpb_uuidv7('2026-01-01Z') < gpb_uuidv7('2026-01-02Z'), 'later ids sort after');
-- ledger_retire (gpb_ledger_retire)
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at)
VALUES ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'active', '{}', 1, 1, 60, now() + interval '1 minute'),
       ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000a1', 'released', '{}', 1, 0, 60, NULL);
INSERT INTO ledger (kind, region_id, pool_id, allocation_id, delta, actor) VALUES
    ('reserved', 'ra', 't4', '00000000-0000-0000-0000-0000000000b2', 1, 't'),
    ('released', 'ra', 't4', '00000000-0000-0000-0000-0000000000b2', -1, 't'),
    ('reserved', 'ra', 't4', '00000000-0000-0000-0000-0000000000b1', 1, 't');
SELECT throws_ok($$DELETE FROM ledger WHERE allocation_id = '00000000-0000-0000-0000-0000000000b2'$$, 'GB002', NULL,
                 'rows no checkpoint covers stay (GB002)');
INSERT INTO ledger_checkpoint (through_seq) SELECT max(seq) FROM ledger;
SELECT throws_ok($$DELETE FROM ledger WHERE allocation_id = '00000000-0000-0000-0000-0000000000b1'$$, 'GB002', NULL,
                 'a live allocation''s rows stay (GB002)');
DELETE FROM ledger WHERE allocation_id = '00000000-0000-0000-0000-0000000000b2';
SELECT results_eq($$SELECT region_id, pool_id, delta_sum, row_count FROM ledger_retired$$,
                  $$VALUES ('ra', 't4', 0::bigint, 2::bigint)$$, 'an ended allocation''s covered rows go, their sums kept');
SELECT * FROM finish();
ROLLBACK;
