-- warehouse schema 1 (SQLite): see warehouse/store/SCHEMA.md. Times are RFC 3339 UTC text
-- with milliseconds ('2026-11-28T03:00:00.004Z'), which sorts as time does.

CREATE TABLE stations (
    id        TEXT PRIMARY KEY,
    jwk       TEXT NOT NULL,            -- the registered public JWK (JSON), signs from seq 1
    kid       TEXT NOT NULL,            -- its RFC 7638 thumbprint
    added_at  TEXT NOT NULL
);

-- The key in force at a seq: the registered key from seq 1, then each signed rotation
-- record's new key from its seq + 1. Written only by `stations add` and by storing a rotation.
CREATE TABLE station_keys (
    station       TEXT NOT NULL REFERENCES stations (id),
    from_seq      INTEGER NOT NULL,
    kid           TEXT NOT NULL,
    jwk           TEXT NOT NULL,
    source        TEXT NOT NULL CHECK (source IN ('registered', 'rotation')),
    rotation_seq  INTEGER,               -- the rotation record's seq (NULL: registered)
    PRIMARY KEY (station, from_seq),
    UNIQUE (station, kid)
);

-- One row per station, the guard of its chain: every intake transaction takes it first.
CREATE TABLE chain_heads (
    station           TEXT PRIMARY KEY REFERENCES stations (id),
    contiguous_seq    INTEGER NOT NULL DEFAULT 0,   -- every seq 1..this is held
    contiguous_digest TEXT,                         -- digest of that batch
    highest_seq       INTEGER NOT NULL DEFAULT 0,
    batches           INTEGER NOT NULL DEFAULT 0,
    readings          INTEGER NOT NULL DEFAULT 0,
    last_received_at  TEXT,
    last_sealed_at    TEXT                          -- sealed_at of highest_seq
);

-- Every signed batch, verbatim (the exact JWS bytes received after inflating): evidence.
CREATE TABLE batches (
    station          TEXT NOT NULL REFERENCES stations (id),
    seq              INTEGER NOT NULL,
    digest           TEXT NOT NULL UNIQUE,   -- base64url SHA-256 of jws
    prev             TEXT,
    kid              TEXT NOT NULL,
    kind             TEXT NOT NULL,          -- 'readings' or the record kind
    payload_version  INTEGER NOT NULL,
    descriptor       INTEGER,                -- a v3 readings batch: the descriptor seq it names
    readings         INTEGER NOT NULL,
    unsynced         INTEGER NOT NULL,
    sealed_at        TEXT NOT NULL,
    received_at      TEXT NOT NULL,
    via              TEXT NOT NULL,          -- 'https', 'mqtt', 'nats', ...
    jws              BLOB NOT NULL,
    PRIMARY KEY (station, seq)
);
CREATE INDEX batches_station_kind ON batches (station, kind, seq);
CREATE TRIGGER batches_no_update BEFORE UPDATE ON batches
BEGIN SELECT RAISE(ABORT, 'batches are append-only evidence'); END;
CREATE TRIGGER batches_no_delete BEFORE DELETE ON batches
BEGIN SELECT RAISE(ABORT, 'batches are append-only evidence'); END;

-- Every reading of every stored readings batch. value_kind says which value column holds it.
CREATE TABLE readings (
    station      TEXT NOT NULL,
    batch_seq    INTEGER NOT NULL,
    ord          INTEGER NOT NULL,           -- its place in the batch (0-based, expanded order)
    device       TEXT NOT NULL,
    param        TEXT NOT NULL,
    unit         TEXT NOT NULL,
    time         TEXT NOT NULL,
    value_kind   TEXT NOT NULL CHECK (value_kind IN ('int', 'float', 'text', 'null')),
    value_int    INTEGER,
    value_float  REAL,
    value_text   TEXT,
    status       TEXT NOT NULL CHECK (status IN ('00', '01', '02')),
    unsynced     INTEGER NOT NULL CHECK (unsynced IN (0, 1)),
    PRIMARY KEY (station, batch_seq, ord)
);
CREATE INDEX readings_datastream ON readings (station, device, param, time, batch_seq, ord);

-- Records (payload v3, kind other than readings): descriptor, rotation, maintenance, ...
CREATE TABLE records (
    station   TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL,                 -- JSON, as signed
    sealed_at TEXT NOT NULL,
    PRIMARY KEY (station, seq)
);
CREATE INDEX records_kind ON records (station, kind, seq);

-- Every batch refused (HTTP 400 / ack 'rejected'); nothing of it is stored elsewhere.
CREATE TABLE refusals (
    id           INTEGER PRIMARY KEY,
    station      TEXT NOT NULL,
    seq          INTEGER,                    -- the seq it claims, if readable
    received_at  TEXT NOT NULL,
    via          TEXT NOT NULL,
    reason       TEXT NOT NULL,
    digest       TEXT NOT NULL,
    size         INTEGER NOT NULL
);
CREATE INDEX refusals_station ON refusals (station, seq);
