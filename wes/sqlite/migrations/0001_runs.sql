-- Runs, newest first by seq. Times are UTC text in WES format ('' when unset).
CREATE TABLE runs (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    id               TEXT    NOT NULL UNIQUE,
    owner            TEXT    NOT NULL,
    username         TEXT    NOT NULL,
    state            TEXT    NOT NULL,
    request          TEXT    NOT NULL,   -- normalized RunRequest, JSON
    tags             TEXT    NOT NULL DEFAULT '{}', -- request.tags again, so lists need not decode requests
    name             TEXT    NOT NULL DEFAULT '',
    workflow_type    TEXT    NOT NULL DEFAULT '',
    attachments      TEXT    NOT NULL DEFAULT '[]',
    created          TEXT    NOT NULL,
    started          TEXT    NOT NULL DEFAULT '',
    ended            TEXT    NOT NULL DEFAULT '',
    job_id           TEXT    NOT NULL DEFAULT '',
    run_dir          TEXT    NOT NULL DEFAULT '',
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    cancel_sent      INTEGER NOT NULL DEFAULT 0,
    exit_code        INTEGER,
    cmd              TEXT    NOT NULL DEFAULT '[]',
    system_logs      TEXT    NOT NULL DEFAULT '[]',
    outputs          TEXT    NOT NULL DEFAULT '{}',
    partition        TEXT    NOT NULL DEFAULT '',
    node             TEXT    NOT NULL DEFAULT '',
    gone_since       TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX runs_owner_seq ON runs (owner, seq);
CREATE INDEX runs_state_seq ON runs (state, seq);

CREATE TABLE run_tags (
    run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    key     TEXT    NOT NULL,
    value   TEXT    NOT NULL,
    PRIMARY KEY (run_seq, key)
);
CREATE INDEX run_tags_key_value ON run_tags (key, value, run_seq);

CREATE TABLE tasks (
    run_seq     INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    position    INTEGER NOT NULL,
    id          TEXT    NOT NULL,
    name        TEXT    NOT NULL,
    cmd         TEXT    NOT NULL DEFAULT '[]',
    started     TEXT    NOT NULL DEFAULT '',
    ended       TEXT    NOT NULL DEFAULT '',
    exit_code   INTEGER,
    system_logs TEXT    NOT NULL DEFAULT '[]',
    PRIMARY KEY (run_seq, position),
    UNIQUE (run_seq, id)
);

CREATE TABLE secrets (
    name  TEXT PRIMARY KEY,
    value BLOB NOT NULL
);
