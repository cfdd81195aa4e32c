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
)

// Config is every service's configuration; each uses the part it needs.
type Config struct {
	HTTPAddr     string
	ShardMapFile string
	DBUser       string
	DBPassword   string
	RedisAddr    string
	CacheTTL     time.Duration
	KafkaBrokers []string
	UserURL      string
	PostURL      string
	FeedURL      string
	// TokenKey signs and verifies bearer tokens; the user service and the gateway share it.
	TokenKey    []byte
	AssetMaxAge time.Duration
	SMTPAddr    string
	SMTPFrom    string
	// CelebrityFollowers: authors with this many followers are merged at read time.
	CelebrityFollowers int
	Hash               auth.HashParams
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
		HTTPAddr: ":8080", DBUser: "app", CacheTTL: 10 * time.Minute, AssetMaxAge: 365 * 24 * time.Hour,
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
	str("SCALESTACK_HTTP_ADDR", &c.HTTPAddr)
	str("SCALESTACK_SHARD_MAP_FILE", &c.ShardMapFile)
	str("SCALESTACK_DB_USER", &c.DBUser)
	str("SCALESTACK_DB_PASSWORD", &c.DBPassword)
	str("SCALESTACK_REDIS_ADDR", &c.RedisAddr)
	dur("SCALESTACK_CACHE_TTL", &c.CacheTTL)
	if v := os.Getenv("SCALESTACK_KAFKA_BROKERS"); v != "" {
		c.KafkaBrokers = strings.Split(v, ",")
	}
	str("SCALESTACK_USER_URL", &c.UserURL)
	str("SCALESTACK_POST_URL", &c.PostURL)
	str("SCALESTACK_FEED_URL", &c.FeedURL)
	if v := os.Getenv("SCALESTACK_TOKEN_KEY"); v != "" {
		c.TokenKey = []byte(v)
	}
	dur("SCALESTACK_ASSET_MAX_AGE", &c.AssetMaxAge)
	str("SCALESTACK_SMTP_ADDR", &c.SMTPAddr)
	str("SCALESTACK_SMTP_FROM", &c.SMTPFrom)
	integer("SCALESTACK_CELEBRITY_FOLLOWERS", &c.CelebrityFollowers)
	num("SCALESTACK_RATE_LIMIT", &c.RateLimit)
	integer("SCALESTACK_RATE_BURST", &c.RateBurst)
	num("SCALESTACK_AUTH_RATE_LIMIT", &c.AuthRateLimit)
	integer("SCALESTACK_AUTH_RATE_BURST", &c.AuthRateBurst)
	boolean("SCALESTACK_TRUST_FORWARDED", &c.TrustForwarded)
	boolean("SCALESTACK_SECURE_COOKIES", &c.SecureCookies)
	str("SCALESTACK_LOG_FORMAT", &c.LogFormat)
	if len(errs) > 0 {
		return c, fmt.Errorf("invalid configuration: %s", strings.Join(errs, "; "))
	}
	return c, nil
}
