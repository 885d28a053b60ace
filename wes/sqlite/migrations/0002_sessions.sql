-- Browser sessions (github.com/alexedwards/scs/v2), kept in wesgate's own
-- database. expiry is Unix seconds.
CREATE TABLE sessions (
    token  TEXT PRIMARY KEY,
    data   BLOB NOT NULL,
    expiry INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions (expiry);
