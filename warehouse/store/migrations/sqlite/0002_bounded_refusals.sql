-- warehouse schema 2 (SQLite): refusals counted per station, and only the latest unsigned ones
-- kept (anyone can post garbage to a station's URL; a batch whose signature verified is kept).
ALTER TABLE refusals ADD COLUMN signed INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chain_heads ADD COLUMN refused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE chain_heads ADD COLUMN chain_refused INTEGER NOT NULL DEFAULT 0;
CREATE INDEX refusals_unsigned ON refusals (station, id) WHERE signed = 0;
UPDATE chain_heads SET
    refused = (SELECT count(*) FROM refusals r WHERE r.station = chain_heads.station),
    chain_refused = (SELECT count(*) FROM refusals r WHERE r.station = chain_heads.station
                     AND (r.reason LIKE 'replay%' OR r.reason LIKE 'chain broken%'));
