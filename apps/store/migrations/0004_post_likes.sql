-- Who liked which post, on the post's shard: a like is one row per (post, user), so liking twice
-- counts once and unliking takes back only a like that exists. posts.likes stays the count, kept
-- in the same transaction as these rows.
CREATE TABLE IF NOT EXISTS post_likes (
  post_id    BIGINT       NOT NULL,
  user_id    BIGINT       NOT NULL,
  created_at DATETIME(3)  NOT NULL DEFAULT CURRENT_TIMESTAMP(3),
  PRIMARY KEY (post_id, user_id)
) ENGINE=InnoDB;
