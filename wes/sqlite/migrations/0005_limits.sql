-- Per-user limits: the attachment bytes of each run, and an index that
-- counts one owner's runs by state without reading the others'.
ALTER TABLE runs ADD COLUMN attachment_bytes INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_owner_state ON runs (owner, state);
