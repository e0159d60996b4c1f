-- warehouse schema 3 (SQLite): the signed configuration documents issued to each station
-- (issue 32; docs/protocol.md "Remote configuration"). Append-only: the history of who pushed
-- what. A station's versions strictly increase: the trigger refuses any version not above the
-- station's latest, whoever inserts it.
CREATE TABLE config_documents (
    station    TEXT NOT NULL REFERENCES stations (id),
    version    INTEGER NOT NULL CHECK (version >= 1),
    jws        TEXT NOT NULL CHECK (length(CAST(jws AS BLOB)) <= 131072),
    digest     TEXT NOT NULL CHECK (length(digest) = 64),
    issued_at  TEXT NOT NULL,
    pushed_by  TEXT,
    PRIMARY KEY (station, version)
);
CREATE TRIGGER config_documents_increasing BEFORE INSERT ON config_documents
WHEN NEW.version <= (SELECT coalesce(max(version), 0) FROM config_documents
                     WHERE station = NEW.station)
BEGIN SELECT RAISE(ABORT, 'config_documents: a version must exceed the station''s latest'); END;
CREATE TRIGGER config_documents_no_update BEFORE UPDATE ON config_documents
BEGIN SELECT RAISE(ABORT, 'config_documents are append-only'); END;
CREATE TRIGGER config_documents_no_delete BEFORE DELETE ON config_documents
BEGIN SELECT RAISE(ABORT, 'config_documents are append-only'); END;
