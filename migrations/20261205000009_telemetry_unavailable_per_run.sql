-- What a machine cannot measure (`power_w: nvml: no device (…)`, one line per metric and
-- source) is a fact of the host, the same for every cell of a run, yet each result carried
-- it in telemetry_json: about 3.7 KB of each 5.2 KB result row on a machine without a GPU,
-- so a million results spent 3.7 GB repeating one list, and every merge, import and
-- checkpoint copied it. The list now lives once per run, in run.telemetry_unavailable_json
-- (a JSON array of strings). A result's telemetry_json keeps an `unavailable` list only
-- where it differs from its run's (a cell that lost a source mid-run), so a reader takes
-- the result's own list when it has one, else the run's.
ALTER TABLE run ADD COLUMN telemetry_unavailable_json TEXT;

UPDATE run SET telemetry_unavailable_json = (
    SELECT json_extract(r.telemetry_json, '$.unavailable') FROM result r
    WHERE r.run_id = run.id AND json_valid(r.telemetry_json)
      AND json_type(r.telemetry_json, '$.unavailable') = 'array'
    ORDER BY r.cell_index, r.id LIMIT 1);

UPDATE result SET telemetry_json = json_remove(telemetry_json, '$.unavailable')
WHERE json_valid(telemetry_json)
  AND json_type(telemetry_json, '$.unavailable') = 'array'
  AND json_extract(telemetry_json, '$.unavailable') =
      (SELECT run.telemetry_unavailable_json FROM run WHERE run.id = result.run_id);
