-- tokbench schema v1. Append-only: never edit a migration that has landed; add a new one.
-- Units are in column names; NULL means "not known / not applicable", never 0.

CREATE TABLE hardware (
    id                      INTEGER PRIMARY KEY,
    name                    TEXT NOT NULL UNIQUE,
    vendor                  TEXT,
    kind                    TEXT,             -- discrete_gpu | unified | cpu
    memory_bytes            INTEGER,
    bandwidth_bytes_per_s   REAL,
    tdp_w                   REAL,
    msrp                    REAL,
    msrp_currency           TEXT,
    msrp_date               TEXT,
    sources_json            TEXT NOT NULL DEFAULT '{}'
);

CREATE TABLE host (
    id                  INTEGER PRIMARY KEY,
    identity            TEXT NOT NULL UNIQUE,
    hostname            TEXT NOT NULL,
    cpu_model           TEXT NOT NULL,
    cpu_cores_logical   INTEGER NOT NULL,
    cpu_cores_physical  INTEGER,
    memory_total_bytes  INTEGER,
    os                  TEXT NOT NULL,
    kernel              TEXT,
    arch                TEXT NOT NULL,
    gpus_json           TEXT NOT NULL DEFAULT '[]',
    hardware_id         INTEGER REFERENCES hardware(id),
    first_seen_at       TEXT NOT NULL
);

CREATE TABLE backend_build (
    id          INTEGER PRIMARY KEY,
    name        TEXT NOT NULL,
    version     TEXT NOT NULL,
    commit_sha  TEXT,
    accel       TEXT NOT NULL,
    flags       TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX backend_build_identity
    ON backend_build (name, version, IFNULL(commit_sha, ''), accel, flags);

CREATE TABLE model (
    id              INTEGER PRIMARY KEY,
    name            TEXT NOT NULL,
    architecture    TEXT NOT NULL,
    quant           TEXT NOT NULL,
    n_params        INTEGER NOT NULL,
    file_bytes      INTEGER NOT NULL,
    file_sha256     TEXT NOT NULL,
    shape_json      TEXT NOT NULL DEFAULT '{}',
    origin          TEXT NOT NULL,
    UNIQUE (file_sha256, name)
);

CREATE TABLE workload (
    id          INTEGER PRIMARY KEY,
    kind        TEXT NOT NULL,          -- bench: llama-bench style pp/tg test
    label       TEXT NOT NULL,          -- pp512, tg128, pp512 @ d4096
    n_prompt    INTEGER NOT NULL,
    n_gen       INTEGER NOT NULL,
    n_depth     INTEGER NOT NULL,
    UNIQUE (kind, n_prompt, n_gen, n_depth)
);

CREATE TABLE run (
    id                  INTEGER PRIMARY KEY,
    uuid                TEXT NOT NULL UNIQUE,
    started_at          TEXT NOT NULL,   -- RFC 3339, UTC
    finished_at         TEXT,
    suite_name          TEXT NOT NULL,
    suite_path          TEXT,
    config_text         TEXT,            -- the suite file as it was
    tokbench_version    TEXT NOT NULL,
    trigger             TEXT NOT NULL DEFAULT 'manual',
    status              TEXT NOT NULL DEFAULT 'running'
                        CHECK (status IN ('running', 'ok', 'failed', 'interrupted')),
    cells_total         INTEGER NOT NULL,
    host_id             INTEGER NOT NULL REFERENCES host(id),
    source              TEXT             -- where imported numbers came from; NULL: measured here
);

CREATE TABLE result (
    id                      INTEGER PRIMARY KEY,
    run_id                  INTEGER NOT NULL REFERENCES run(id) ON DELETE CASCADE,
    cell_index              INTEGER NOT NULL,
    backend_build_id        INTEGER NOT NULL REFERENCES backend_build(id),
    model_id                INTEGER REFERENCES model(id),
    model_name              TEXT NOT NULL,   -- as the suite named it, also when the model never loaded
    workload_id             INTEGER NOT NULL REFERENCES workload(id),
    n_threads               INTEGER,
    n_batch                 INTEGER,
    n_ubatch                INTEGER,
    n_gpu_layers            INTEGER,
    flash_attn              INTEGER,
    type_k                  TEXT,
    type_v                  TEXT,
    use_mmap                INTEGER,
    status                  TEXT NOT NULL
                            CHECK (status IN ('ok', 'failed', 'crashed', 'timeout', 'unavailable', 'interrupted')),
    error                   TEXT,
    metric_source           TEXT NOT NULL CHECK (metric_source IN ('engine', 'server', 'client')),
    repetitions_expected    INTEGER NOT NULL,
    prefill_tps             REAL,
    prefill_tps_sd          REAL,
    decode_tps              REAL,
    decode_tps_sd           REAL,
    ttft_ms                 REAL,
    ttft_ms_sd              REAL,
    load_ms                 REAL,
    rss_peak_bytes          INTEGER,
    log_tail                TEXT,
    started_at              TEXT NOT NULL,
    duration_ms             REAL NOT NULL,
    UNIQUE (run_id, cell_index, metric_source)
);
CREATE INDEX result_by_series ON result (model_id, workload_id, backend_build_id);

CREATE TABLE repetition (
    result_id       INTEGER NOT NULL REFERENCES result(id) ON DELETE CASCADE,
    rep             INTEGER NOT NULL,
    prefill_tps     REAL,
    decode_tps      REAL,
    ttft_ms         REAL,
    prompt_ms       REAL,
    gen_ms          REAL,
    PRIMARY KEY (result_id, rep)
) WITHOUT ROWID;

CREATE TABLE telemetry_sample (
    id          INTEGER PRIMARY KEY,
    result_id   INTEGER NOT NULL REFERENCES result(id) ON DELETE CASCADE,
    t_ms        REAL NOT NULL,        -- since the start of the cell, monotonic clock
    phase       TEXT NOT NULL,        -- idle | load | warmup | prefill | decode
    metric      TEXT NOT NULL,        -- e.g. rss_bytes, power_w, vram_used_bytes
    value       REAL NOT NULL,
    source      TEXT NOT NULL         -- procfs | nvml | rapl | powermetrics | amdgpu
);
CREATE INDEX telemetry_by_result ON telemetry_sample (result_id, metric, t_ms);

-- The public interface: one row per result. Documented in README.md ("The database").
CREATE VIEW v_results AS
SELECT
    run.uuid                AS run_uuid,
    run.started_at          AS started_at,
    host.hostname           AS host,
    bb.name                 AS backend,
    bb.version              AS backend_version,
    bb.commit_sha           AS backend_commit,
    bb.accel                AS accel,
    r.model_name            AS model,
    m.quant                 AS quant,
    m.n_params              AS model_params,
    m.file_bytes            AS model_bytes,
    w.label                 AS test,
    w.n_prompt              AS n_prompt,
    w.n_gen                 AS n_gen,
    w.n_depth               AS n_depth,
    r.n_threads             AS n_threads,
    r.n_batch               AS n_batch,
    r.n_ubatch              AS n_ubatch,
    r.n_gpu_layers          AS n_gpu_layers,
    r.flash_attn            AS flash_attn,
    r.type_k                AS type_k,
    r.type_v                AS type_v,
    r.status                AS status,
    r.error                 AS error,
    r.prefill_tps           AS prefill_tps,
    r.prefill_tps_sd        AS prefill_tps_sd,
    r.decode_tps            AS decode_tps,
    r.decode_tps_sd         AS decode_tps_sd,
    r.ttft_ms               AS ttft_ms,
    r.ttft_ms_sd            AS ttft_ms_sd,
    r.load_ms               AS load_ms,
    r.rss_peak_bytes        AS rss_peak_bytes,
    r.metric_source         AS metric_source,
    (SELECT COUNT(*) FROM repetition rep WHERE rep.result_id = r.id) AS n_reps,
    r.repetitions_expected  AS n_reps_expected,
    run.source              AS source,
    r.id                    AS result_id
FROM result r
JOIN run                 ON run.id = r.run_id
JOIN host                ON host.id = run.host_id
JOIN backend_build bb    ON bb.id = r.backend_build_id
JOIN workload w          ON w.id = r.workload_id
LEFT JOIN model m        ON m.id = r.model_id;
