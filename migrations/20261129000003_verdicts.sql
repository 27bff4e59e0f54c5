-- Regression gating (`tokbench check`): every verdict with the inputs it was reached from,
-- so a past verdict can be audited, and manual change points that restart a series'
-- baseline (a driver upgrade accepted as the new normal).

CREATE TABLE verdict (
    id                  INTEGER PRIMARY KEY,
    check_uuid          TEXT NOT NULL,           -- one `tokbench check` invocation
    checked_at          TEXT NOT NULL,           -- RFC 3339 UTC
    run_id              INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    result_id           INTEGER NOT NULL REFERENCES result(id) ON DELETE CASCADE,
    series_key          TEXT NOT NULL,
    metric              TEXT NOT NULL,           -- prefill_tps | decode_tps | ttft_ms | rss_peak_bytes
    kind                TEXT NOT NULL
                        CHECK (kind IN ('ok', 'improvement', 'suspect', 'regression', 'transient', 'noisy', 'insufficient', 'invalid')),
    value               REAL NOT NULL,           -- the judged result's median
    cv                  REAL,
    mad                 REAL,
    baseline_n          INTEGER NOT NULL,
    baseline_geomean    REAL,
    baseline_sd_log     REAL,
    t_quantile          REAL,
    limit_value         REAL,                    -- beyond this (in the bad direction) it fails
    floor               REAL,                    -- the practical floor, a fraction
    ratio               REAL,                    -- value / baseline_geomean
    remeasured_json     TEXT NOT NULL DEFAULT '[]', -- re-measurement run UUIDs and their values
    reason              TEXT NOT NULL
);
CREATE INDEX verdict_by_run ON verdict (run_id, kind);
CREATE INDEX verdict_by_series ON verdict (series_key, checked_at);

CREATE TABLE change_point (
    id          INTEGER PRIMARY KEY,
    series_key  TEXT NOT NULL,
    at          TEXT NOT NULL,      -- results started at or after this form the new baseline
    note        TEXT NOT NULL,
    created_at  TEXT NOT NULL
);
CREATE INDEX change_point_by_series ON change_point (series_key, at);
