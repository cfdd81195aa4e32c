-- The last ID handed out per logical shard, on the physical shard that holds it. Every process
-- raises its own candidate ID above it in the transaction that writes the row, so two processes
-- never mint the same user, post or event ID (a per-process sequence alone could: two pods in the
-- same millisecond both start at sequence 0).
CREATE TABLE IF NOT EXISTS id_clock (
  logical SMALLINT UNSIGNED NOT NULL PRIMARY KEY,
  last_id BIGINT            NOT NULL
) ENGINE=InnoDB;
