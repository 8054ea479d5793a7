-- definitions/grants.sql: gpb_grant_batch locks its pools in key order (region, pool),
-- the order every writer takes them in, so two batches never wait for each other in a
-- cycle. Committed data (this file has its database to itself) and two more sessions
-- (dblink): one holds the middle pool; a batch over three pools, sent from the other,
-- then holds the first and waits for the middle one, and has not touched the last.
\ir fixtures.psql
SELECT plan(4);
SELECT dblink_connect('holder', t_conninfo());
SELECT dblink_connect('granter', t_conninfo());
SELECT dblink_exec('holder', 'BEGIN');
SELECT is((SELECT n FROM dblink('holder', $$SELECT 1 FROM pools WHERE region_id = 'ra' AND id = 't4' FOR UPDATE$$) AS r (n int)),
          1, 'the holder locks ra/t4');
SELECT dblink_send_query('granter', $$SELECT count(*) FROM gpb_grant_batch(ARRAY[
    t_grant('00000000-0000-0000-0000-0000000000a1', 'rb', 't4', 1),
    t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 't4', 1),
    t_grant('00000000-0000-0000-0000-0000000000a1', 'ra', 'g8', 1)])$$);
SELECT pg_sleep(0.5);
SELECT is((SELECT array_agg(p.region_id || '/' || p.id ORDER BY p.region_id, p.id)
           FROM pgrowlocks('pools') l JOIN pools p ON p.ctid = l.locked_row),
          '{ra/g8,ra/t4}', 'the batch holds ra/g8 (first in key order) and waits for ra/t4; rb/t4 is untouched');
SELECT dblink_exec('holder', 'COMMIT');
SELECT is((SELECT n FROM dblink_get_result('granter') AS r (n bigint)), 3::bigint, 'once released, the batch grants all three');
SELECT is((SELECT count(*) FROM pgrowlocks('pools')), 0::bigint, 'and releases its locks');
SELECT * FROM finish();
