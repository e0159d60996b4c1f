-- warehouse schema 3 (PostgreSQL): the signed configuration documents issued to each station
-- (issue 32; docs/protocol.md "Remote configuration"). Append-only: the history of who pushed
-- what. A station's versions strictly increase: the trigger locks the station's row (NO KEY
-- UPDATE: the intake's foreign-key checks are not blocked) and refuses any version not above
-- the station's latest, so two concurrent pushes cannot both pass the check.
CREATE TABLE config_documents (
    station    text NOT NULL REFERENCES stations (id),
    version    bigint NOT NULL CHECK (version >= 1),
    jws        text NOT NULL CHECK (octet_length(jws) <= 131072),
    digest     text NOT NULL CHECK (digest ~ '^[0-9a-f]{64}$'),
    issued_at  timestamptz NOT NULL,
    pushed_by  text,
    PRIMARY KEY (station, version)
);

CREATE FUNCTION config_documents_increasing() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM stations WHERE id = NEW.station FOR NO KEY UPDATE;
    IF NEW.version <= (SELECT coalesce(max(version), 0) FROM config_documents
                       WHERE station = NEW.station) THEN
        RAISE EXCEPTION 'config_documents: version % of station % does not exceed its latest',
            NEW.version, NEW.station;
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER config_documents_increasing BEFORE INSERT ON config_documents
    FOR EACH ROW EXECUTE FUNCTION config_documents_increasing();

CREATE FUNCTION config_documents_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'config_documents are append-only';
END $$;
CREATE TRIGGER config_documents_append_only BEFORE UPDATE OR DELETE ON config_documents
    FOR EACH ROW EXECUTE FUNCTION config_documents_append_only();
