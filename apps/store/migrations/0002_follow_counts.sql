-- Follower and following counts, kept in the same transaction as the follow rows they count
-- (COUNT(*) over a popular user's followers is a scan of tens of thousands of rows).
CREATE TABLE IF NOT EXISTS follow_counts (
  user_id   BIGINT NOT NULL PRIMARY KEY,
  followers INT    NOT NULL DEFAULT 0,
  following INT    NOT NULL DEFAULT 0
) ENGINE=InnoDB;

-- Backfill from the rows already there.
INSERT INTO follow_counts (user_id, followers)
  SELECT user_id, COUNT(*) FROM followers GROUP BY user_id
  ON DUPLICATE KEY UPDATE followers = VALUES(followers);

INSERT INTO follow_counts (user_id, following)
  SELECT user_id, COUNT(*) FROM following GROUP BY user_id
  ON DUPLICATE KEY UPDATE following = VALUES(following);
