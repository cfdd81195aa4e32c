-- The hot tables of one physical shard. The same statements run on MariaDB and MySQL 8.
CREATE TABLE IF NOT EXISTS users (
  id            BIGINT       NOT NULL PRIMARY KEY,
  handle        VARCHAR(32)  NOT NULL,
  email         VARCHAR(254) NOT NULL,
  password_hash VARCHAR(255) NOT NULL,
  display_name  VARCHAR(64)  NOT NULL,
  bio           VARCHAR(280) NOT NULL DEFAULT '',
  created_at    DATETIME(3)  NOT NULL,
  updated_at    DATETIME(3)  NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Handles are unique across shards: each lives on the shard its hash picks.
CREATE TABLE IF NOT EXISTS handles (
  handle  VARCHAR(32) NOT NULL PRIMARY KEY,
  user_id BIGINT      NOT NULL
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- A follow is stored twice, each row on its owner's shard.
CREATE TABLE IF NOT EXISTS following (
  user_id     BIGINT      NOT NULL,
  followee_id BIGINT      NOT NULL,
  created_at  DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, followee_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS followers (
  user_id     BIGINT      NOT NULL,
  follower_id BIGINT      NOT NULL,
  created_at  DATETIME(3) NOT NULL,
  PRIMARY KEY (user_id, follower_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS posts (
  id         BIGINT       NOT NULL PRIMARY KEY,
  author_id  BIGINT       NOT NULL,
  body       VARCHAR(500) NOT NULL,
  likes      INT          NOT NULL DEFAULT 0,
  created_at DATETIME(3)  NOT NULL,
  KEY by_author (author_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Cold posts, moved here by the archiver.
CREATE TABLE IF NOT EXISTS posts_archive (
  id         BIGINT       NOT NULL PRIMARY KEY,
  author_id  BIGINT       NOT NULL,
  body       VARCHAR(500) NOT NULL,
  likes      INT          NOT NULL DEFAULT 0,
  created_at DATETIME(3)  NOT NULL,
  KEY by_author (author_id, id)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;

-- Events written in the same transaction as the change, relayed to Kafka.
CREATE TABLE IF NOT EXISTS outbox (
  seq        BIGINT       NOT NULL AUTO_INCREMENT PRIMARY KEY,
  event_id   BIGINT       NOT NULL,
  topic      VARCHAR(128) NOT NULL,
  msg_key    VARCHAR(64)  NOT NULL,
  payload    BLOB         NOT NULL,
  created_at DATETIME(3)  NOT NULL
) ENGINE=InnoDB;

-- Dedupe at the sink: an event a consumer has applied.
CREATE TABLE IF NOT EXISTS processed_events (
  consumer     VARCHAR(64) NOT NULL,
  event_id     BIGINT      NOT NULL,
  processed_at DATETIME(3) NOT NULL,
  PRIMARY KEY (consumer, event_id)
) ENGINE=InnoDB;

CREATE TABLE IF NOT EXISTS suggestions (
  user_id      BIGINT NOT NULL,
  suggested_id BIGINT NOT NULL,
  score        INT    NOT NULL,
  PRIMARY KEY (user_id, suggested_id)
) ENGINE=InnoDB;
