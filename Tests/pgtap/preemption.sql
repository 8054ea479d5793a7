-- definitions/preemption.sql: preemption with notice (migration 17).
BEGIN;
\ir fixtures.psql
SELECT plan(17);

-- A best-effort victim of three instances on ra/t4, and the allocation that preempts it.
INSERT INTO allocations (id, tenant_id, status, request, replicas, placed_replicas, lease_seconds, lease_expires_at) VALUES
    ('00000000-0000-0000-0000-0000000000b1', '00000000-0000-0000-0000-0000000000a1', 'active',
     '{"shape":{"computeClass":"gpu","qos":"best-effort","gpuCount":1,"cpu":4,"memoryGiB":16}}', 3, 3, 3600,
     now() + interval '1 hour');
INSERT INTO allocations (id, tenant_id, status, request, replicas, lease_seconds, queue_deadline) VALUES
    ('00000000-0000-0000-0000-0000000000b2', '00000000-0000-0000-0000-0000000000a1', 'pending',
     '{"shape":{"computeClass":"gpu","qos":"default","gpuCount":1,"cpu":4,"memoryGiB":16}}', 1, 3600,
     now() + interval '1 hour');
SELECT count(*) FROM gpb_reserve('00000000-0000-0000-0000-0000000000b1',
                                 ARRAY[ROW('ra', 't4', 3, 0, '{v1,v2,v3}')::gpb_placement], 'test');
CREATE TEMP TABLE victim AS SELECT seq FROM instances ORDER BY seq;

-- gpb_preempt without notice: stops at once, like rule 8 always did.
SELECT is(gpb_preempt(ARRAY[(SELECT min(seq) FROM victim)], '00000000-0000-0000-0000-0000000000b2', 'tenant:p'), NULL,
          'no notice set: no deadline');
SELECT is((SELECT state FROM instances WHERE seq = (SELECT min(seq) FROM victim)), 'preempted', 'the victim stopped at once');
SELECT is((SELECT allocated FROM pools WHERE region_id = 'ra' AND id = 't4'), 2, 'and gave its capacity back');
SELECT is((SELECT actor FROM ledger WHERE kind = 'preempted'), 'tenant:p allocation:00000000-0000-0000-0000-0000000000b2',
          'the ledger names the preemptor');
SELECT is((SELECT placed_replicas || ' ' || status FROM allocations WHERE id = '00000000-0000-0000-0000-0000000000b1'),
          '2 partial', 'the victim allocation is partial');

-- With notice: preempting until the deadline, capacity, usage and lease kept.
INSERT INTO preemption_settings (qos, notice_seconds) VALUES ('best-effort', 60);
CREATE TEMP TABLE noticed AS
    SELECT gpb_preempt(ARRAY(SELECT seq FROM victim), '00000000-0000-0000-0000-0000000000b2', 'tenant:p') AS deadline;
SELECT ok((SELECT deadline BETWEEN now() + interval '59 seconds' AND clock_timestamp() + interval '60 seconds' FROM noticed),
          'a deadline a notice away');
SELECT is((SELECT count(*) FROM instances WHERE state = 'preempting' AND preempted_for = '00000000-0000-0000-0000-0000000000b2'),
          2::bigint, 'the running instances turn preempting, for the preemptor');
SELECT is((SELECT allocated FROM pools WHERE region_id = 'ra' AND id = 't4'), 2, 'they still hold their capacity');
SELECT is((SELECT instances FROM tenant_usage WHERE tenant_id = '00000000-0000-0000-0000-0000000000a1'), 2,
          'and count in their tenant''s usage');
SELECT is((SELECT count(*) FROM ledger WHERE kind = 'preempting' AND delta = 0 AND deadline IS NOT NULL), 2::bigint,
          'a preempting ledger row each, with the deadline');
SELECT ok((SELECT gpb_event_json(l)->'data' ? 'deadline' AND gpb_event_json(l)->'data'->>'actor' = 'preemption'
           FROM ledger l WHERE kind = 'preempting' LIMIT 1), 'whose event says the deadline and hides the preemptor');

-- gpb_end_due_preemptions: nothing before the deadline, everything after.
SELECT is((SELECT stopped FROM gpb_end_due_preemptions(10)), 0, 'nothing is due before the deadline');
UPDATE instances SET preempt_deadline = now() - interval '1 second' WHERE state = 'preempting';
SELECT is((SELECT waiting FROM gpb_end_due_preemptions(1)), '{00000000-0000-0000-0000-0000000000b2}'::uuid[],
          'a due instance stops, naming who waited for it');
SELECT is((SELECT stopped FROM gpb_end_due_preemptions(10)), 1, 'the rest stop on the next step');
SELECT is((SELECT allocated FROM pools WHERE region_id = 'ra' AND id = 't4'), 0, 'their capacity is free');

-- gpb_stop_preempted: only live instances stop, once.
SELECT is((SELECT count(*) FROM gpb_stop_preempted(ARRAY(SELECT seq FROM victim), 'again')), 0::bigint,
          'stopping stopped instances does nothing');
SELECT is((SELECT sum(delta) FROM ledger WHERE allocation_id = '00000000-0000-0000-0000-0000000000b1'), 0::bigint,
          'the ledger adds up: three reserved, three preempted');
SELECT * FROM finish();
ROLLBACK;
