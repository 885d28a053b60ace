-- Queue samples for the admin dashboard's 24-hour chart. at is Unix seconds.
CREATE TABLE queue_samples (
    at      INTEGER PRIMARY KEY,
    pending INTEGER NOT NULL,
    running INTEGER NOT NULL
);
