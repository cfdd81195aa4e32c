// Package service assembles each app service from its configuration (the SCALESTACK_*
// environment the operator renders, or flags), and runs it: the HTTP server with /healthz,
// /readyz and /metrics, the background loops (outbox relay, shard map reload, consumers), and a
// graceful shutdown that turns readiness off before it stops serving.
package service

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/pkg/platform"
)

// Config is every service's configuration; each uses the part it needs.
type Config struct {
	HTTPAddr     string
	ShardMapFile string
	DBUser       string
	DBPassword   string
	// DBPoolSize is the connections per database server (the operator sizes it so that every
	// pod at maxReplicas fits the servers' max_connections); 0 is the store's default.
	DBPoolSize int
	RedisAddr  string
	// RedisPassword authenticates to Redis (its default user); empty sends no AUTH.
	RedisPassword string
	CacheTTL      time.Duration
	// FeedPageTTL bounds how long the gateway keeps a user's first feed page (0: not at all).
	FeedPageTTL  time.Duration
	KafkaBrokers []string
	// TopicPrefix goes before every topic and consumer group name on the Kafka cluster
	// (spec.kafka.topicPrefix), so that platforms sharing a cluster never share a topic.
	TopicPrefix string
	UserURL     string
	PostURL     string
	FeedURL     string
	// TokenKey signs and verifies bearer tokens; the user service and the gateway share it.
	TokenKey    []byte
	AssetMaxAge time.Duration
	SMTPAddr    string
	SMTPFrom    string
	// CelebrityFollowers: authors with this many followers are merged at read time.
	CelebrityFollowers int
	Hash               auth.HashParams
	// HashSlots is how many password hashes run at once (0: one core fewer than the process has).
	HashSlots int
	// Pprof serves net/http/pprof under /debug/pprof/ (SCALESTACK_PPROF=true).
	Pprof bool
	// Per-client request rate at the gateway, and for signup and login per address.
	RateLimit     float64
	RateBurst     int
	AuthRateLimit float64
	AuthRateBurst int
	// TrustForwarded: the gateway sits behind a proxy that appends X-Forwarded-For.
	TrustForwarded bool
	SecureCookies  bool
	LogFormat      string
}

// Defaults returns the configuration before the environment is read.
func Defaults() Config {
	return Config{
		HTTPAddr: ":8080", DBUser: platform.DBUser, CacheTTL: 10 * time.Minute, FeedPageTTL: 10 * time.Second, AssetMaxAge: 365 * 24 * time.Hour,
		SMTPFrom: "welcome@scalestack.local", CelebrityFollowers: 1000, Hash: auth.DefaultHashParams,
		RateLimit: 50, RateBurst: 100, AuthRateLimit: 2, AuthRateBurst: 20, LogFormat: "json",
	}
}

// FromEnv reads SCALESTACK_* variables over the defaults. Invalid values are errors that name
// the variable.
func FromEnv() (Config, error) {
	c := Defaults()
	str := func(name string, dst *string) {
		if v, ok := os.LookupEnv(name); ok && v != "" {
			*dst = v
		}
	}
	var errs []string
	dur := func(name string, dst *time.Duration) {
		if v := os.Getenv(name); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q is not a positive duration", name, v))
				return
			}
			*dst = d
		}
	}
	num := func(name string, dst *float64) {
		if v := os.Getenv(name); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil || f <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q is not a positive number", name, v))
				return
			}
			*dst = f
		}
	}
	integer := func(name string, dst *int) {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				errs = append(errs, fmt.Sprintf("%s=%q is not a positive integer", name, v))
				return
			}
			*dst = n
		}
	}
	boolean := func(name string, dst *bool) {
		if v := os.Getenv(name); v != "" {
			b, err := strconv.ParseBool(v)
			if err != nil {
				errs = append(errs, fmt.Sprintf("%s=%q is not a boolean", name, v))
				return
			}
			*dst = b
		}
	}
	str(platform.EnvHTTPAddr, &c.HTTPAddr)
	str(platform.EnvShardMapFile, &c.ShardMapFile)
	str(platform.EnvDBUser, &c.DBUser)
	str(platform.EnvDBPassword, &c.DBPassword)
	integer(platform.EnvDBPoolSize, &c.DBPoolSize)
	str(platform.EnvRedisAddr, &c.RedisAddr)
	str(platform.EnvRedisPassword, &c.RedisPassword)
	dur(platform.EnvCacheTTL, &c.CacheTTL)
	if os.Getenv(platform.EnvFeedPageTTL) == "0" {
		c.FeedPageTTL = 0
	} else {
		dur(platform.EnvFeedPageTTL, &c.FeedPageTTL)
	}
	if v := os.Getenv(platform.EnvKafkaBrokers); v != "" {
		c.KafkaBrokers = strings.Split(v, ",")
	}
	str(platform.EnvKafkaTopicPrefix, &c.TopicPrefix)
	str(platform.EnvUserURL, &c.UserURL)
	str(platform.EnvPostURL, &c.PostURL)
	str(platform.EnvFeedURL, &c.FeedURL)
	if v := os.Getenv(platform.EnvTokenKey); v != "" {
		c.TokenKey = []byte(v)
	}
	dur(platform.EnvAssetMaxAge, &c.AssetMaxAge)
	str(platform.EnvSMTPAddr, &c.SMTPAddr)
	str(platform.EnvSMTPFrom, &c.SMTPFrom)
	integer("SCALESTACK_CELEBRITY_FOLLOWERS", &c.CelebrityFollowers)
	num(platform.EnvRateLimit, &c.RateLimit)
	integer(platform.EnvRateBurst, &c.RateBurst)
	integer("SCALESTACK_HASH_SLOTS", &c.HashSlots)
	boolean("SCALESTACK_PPROF", &c.Pprof)
	num(platform.EnvAuthRateLimit, &c.AuthRateLimit)
	integer(platform.EnvAuthRateBurst, &c.AuthRateBurst)
	boolean(platform.EnvTrustForwarded, &c.TrustForwarded)
	boolean(platform.EnvSecureCookies, &c.SecureCookies)
	str(platform.EnvLogFormat, &c.LogFormat)
	if len(errs) > 0 {
		return c, fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}
