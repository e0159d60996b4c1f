-- warehouse schema 1 (PostgreSQL >= 13): see warehouse/store/SCHEMA.md.

CREATE TABLE stations (
    id        text PRIMARY KEY,
    jwk       jsonb NOT NULL,
    kid       text NOT NULL,
    added_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE station_keys (
    station       text NOT NULL REFERENCES stations (id),
    from_seq      bigint NOT NULL,
    kid           text NOT NULL,
    jwk           jsonb NOT NULL,
    source        text NOT NULL CHECK (source IN ('registered', 'rotation')),
    rotation_seq  bigint,
    PRIMARY KEY (station, from_seq),
    UNIQUE (station, kid)
);

-- The guard of each station's chain: every intake transaction locks its row FOR UPDATE first.
CREATE TABLE chain_heads (
    station           text PRIMARY KEY REFERENCES stations (id),
    contiguous_seq    bigint NOT NULL DEFAULT 0,
    contiguous_digest text,
    highest_seq       bigint NOT NULL DEFAULT 0,
    batches           bigint NOT NULL DEFAULT 0,
    readings          bigint NOT NULL DEFAULT 0,
    last_received_at  timestamptz,
    last_sealed_at    timestamptz
);

CREATE TABLE batches (
    station          text NOT NULL REFERENCES stations (id),
    seq              bigint NOT NULL,
    digest           text NOT NULL UNIQUE,
    prev             text,
    kid              text NOT NULL,
    kind             text NOT NULL,
    payload_version  smallint NOT NULL,
    descriptor       bigint,
    readings         integer NOT NULL,
    unsynced         integer NOT NULL,
    sealed_at        timestamptz NOT NULL,
    received_at      timestamptz NOT NULL,
    via              text NOT NULL,
    jws              bytea NOT NULL,
    PRIMARY KEY (station, seq)
);
CREATE INDEX batches_station_kind ON batches (station, kind, seq);

CREATE FUNCTION batches_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'batches are append-only evidence';
END $$;
CREATE TRIGGER batches_append_only BEFORE UPDATE OR DELETE ON batches
    FOR EACH ROW EXECUTE FUNCTION batches_append_only();

-- Range-partitioned by month on time; partitions readings_yYYYYmMM are created on demand by
-- the intake, in the transaction that stores the batch (warehouse/store/postgres.py).
CREATE TABLE readings (
    station      text NOT NULL,
    batch_seq    bigint NOT NULL,
    ord          integer NOT NULL,
    device       text NOT NULL,
    param        text NOT NULL,
    unit         text NOT NULL,
    time         timestamptz NOT NULL,
    value_kind   text NOT NULL CHECK (value_kind IN ('int', 'float', 'text', 'null')),
    value_int    bigint,
    value_float  double precision,
    value_text   text,
    status       char(2) NOT NULL CHECK (status IN ('00', '01', '02')),
    unsynced     boolean NOT NULL,
    PRIMARY KEY (station, batch_seq, ord, time)
) PARTITION BY RANGE (time);
CREATE INDEX readings_datastream ON readings (station, device, param, time, batch_seq, ord);

CREATE TABLE records (
    station   text NOT NULL,
    seq       bigint NOT NULL,
    kind      text NOT NULL,
    body      jsonb NOT NULL,
    sealed_at timestamptz NOT NULL,
    PRIMARY KEY (station, seq)
);
CREATE INDEX records_kind ON records (station, kind, seq);

CREATE TABLE refusals (
    id           bigserial PRIMARY KEY,
    station      text NOT NULL,
    seq          bigint,
    received_at  timestamptz NOT NULL,
    via          text NOT NULL,
    reason       text NOT NULL,
    digest       text NOT NULL,
    size         integer NOT NULL
);
CREATE INDEX refusals_station ON refusals (station, seq);
