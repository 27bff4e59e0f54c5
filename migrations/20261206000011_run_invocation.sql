-- One command can start runs on several machines (`tokbench run --target a --target b`).
-- Each target's run is a run of its own, with its UUID and its host, and they share the
-- command's invocation id: `results --run latest` shows the whole command, and `compare`
-- sets two of its targets side by side. NULL for a run started on its own.
--
-- `target` is the name (in targets.toml) of the machine a controller ran the run on, so
-- `check` re-measures a suspect there, over SSH, and not on the controller. NULL for a run
-- measured where it is stored.
ALTER TABLE run ADD COLUMN invocation TEXT;
ALTER TABLE run ADD COLUMN target TEXT;
CREATE INDEX run_by_invocation ON run (invocation) WHERE invocation IS NOT NULL;
