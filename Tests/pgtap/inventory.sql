-- definitions/inventory.sql: the inventory read by changes, and its change events.
BEGIN;
\ir fixtures.psql
SELECT plan(19);
-- Each trigger runs its function.
SELECT trigger_is('regions', 'regions_mark_changed', 'gpb_mark_changed');
SELECT trigger_is('pools', 'pools_mark_changed', 'gpb_mark_changed');
SELECT trigger_is('regions', 'regions_count_removal', 'gpb_count_removal');
SELECT trigger_is('pools', 'pools_count_removal', 'gpb_count_removal');
SELECT trigger_is('regions', 'regions_event', 'gpb_record_inventory_event');
SELECT trigger_is('pools', 'pools_event_added', 'gpb_record_inventory_event');
SELECT trigger_is('pools', 'pools_event_reported', 'gpb_record_inventory_event');
-- regions_mark_changed, pools_mark_changed (gpb_mark_changed)
SELECT is((SELECT count(*) FROM pools WHERE changed_xid = pg_current_xact_id()::text::bigint), 3::bigint,
          'pools written carry the writing transaction''s id');
SELECT is((SELECT changed_xid FROM regions WHERE id = 'ra'), pg_current_xact_id()::text::bigint, 'and regions');
-- regions_count_removal, pools_count_removal (gpb_count_removal)
DELETE FROM pools WHERE region_id = 'rb';
DELETE FROM regions WHERE id = 'rb';
SELECT is((SELECT removals FROM inventory_removals), 2::bigint, 'each removing statement counts once');
-- regions_event, pools_event_added, pools_event_reported (gpb_record_inventory_event,
-- gpb_region_json, gpb_pool_json)
SELECT is((SELECT array_agg(type ORDER BY seq) FROM inventory_events),
          '{region.created,region.created,pool.created,pool.created,pool.created,pool.deleted,region.deleted}',
          'creations and deletions are events');
DELETE FROM inventory_events;
UPDATE pools SET allocated = 1 WHERE region_id = 'ra' AND id = 't4';
SELECT is((SELECT count(*) FROM inventory_events), 0::bigint, 'a grant''s counter update is no event');
UPDATE pools SET capacity = 12 WHERE region_id = 'ra' AND id = 't4';
SELECT is((SELECT data->'current'->>'capacity' FROM inventory_events WHERE type = 'pool.changed'), '12', 'a report is, with the row after');
SELECT is((SELECT data->'previous'->>'capacity' FROM inventory_events WHERE type = 'pool.changed'), '10', 'and before');
SELECT is(gpb_pool_json((SELECT p FROM pools p WHERE region_id = 'ra' AND id = 'g8')) ? 'gpuSeries', false,
          'gpb_pool_json leaves out what a CPU pool has not');
SELECT is(gpb_pool_json((SELECT p FROM pools p WHERE region_id = 'ra' AND id = 'g8')) ?| '{gpuVendor,gpuPartitions,gpuInterconnect}',
          false, 'nor its accelerator fields');
SELECT is(gpb_pool_json((SELECT p FROM pools p WHERE region_id = 'ra' AND id = 't4')) @> '{"gpuVendor": "nvidia", "gpuPartitions": [], "gpuInterconnect": []}',
          true, 'a GPU pool''s body has them, as GET /v1/inventory shows them');
SELECT is(gpb_region_json((SELECT r FROM regions r WHERE id = 'ra'))->>'vpcId', 'vpc-a', 'gpb_region_json: the API''s names');
UPDATE regions SET labels = '{"zone": "x"}' WHERE id = 'ra';
SELECT is((SELECT data->'current'->'labels' FROM inventory_events WHERE type = 'region.changed'), '{"zone": "x"}', 'region changes too');
SELECT * FROM finish();
ROLLBACK;
