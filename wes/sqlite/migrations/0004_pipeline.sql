-- The run pipeline: facts recorded once, when a run is submitted, and what
-- must survive a restart.
--   account          the cluster account whose job carries the run (polls,
--                    cancels and collection use it, whatever the config says later)
--   submit_attempted set before a batch of sbatch is sent: a retry looks for
--                    the job by name before submitting again
--   cancel_sent_at   when the first cancel (SIGTERM or scancel) was sent; the
--                    pipeline cancels outright after the grace period
--   collected_bytes  bytes copied home for this run (per-user collection limit)
ALTER TABLE runs ADD COLUMN account TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN submit_attempted INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cancel_sent_at TEXT NOT NULL DEFAULT '';
ALTER TABLE runs ADD COLUMN collected_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_username_state ON runs (username, state);
