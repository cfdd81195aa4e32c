// Command dbagent runs beside each shard's database container: it sets up and watches GTID
// replication and answers the pod's readiness probe. See package dbagent.
//
//	dbagent              the sidecar (the default)
//	dbagent install DST  copy this binary to DST (an init container of the apps image)
//	dbagent init         bootstrap the data directory (an init container of the database image)
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/apps/dbagent"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/platform"
	"github.com/scalestack/scalestack/pkg/replication"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	var err error
	switch {
	case len(os.Args) > 1 && os.Args[1] == "install":
		if len(os.Args) != 3 {
			err = errors.New("usage: dbagent install DESTINATION")
		} else {
			err = dbagent.CopySelf(os.Args[2])
		}
	case len(os.Args) > 1 && os.Args[1] == "init":
		err = bootstrap(log)
	case len(os.Args) > 1:
		err = fmt.Errorf("unknown command %q (commands: install, init; none runs the agent)", os.Args[1])
	default:
		err = run(log)
	}
	if err != nil {
		log.Error("dbagent stopped", "error", err.Error())
		os.Exit(1)
	}
}

// terminationLog is the kubelet's default terminationMessagePath.
const terminationLog = "/dev/termination-log"

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func bootstrap(log *slog.Logger) error {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	b := dbagent.Bootstrap{
		Engine:       replication.Engine(env(platform.EnvAgentEngine, string(replication.MariaDB))),
		DataDir:      env(platform.EnvAgentDataDir, "/var/lib/mysql/data"),
		RunDir:       env("DBAGENT_RUNDIR", "/run/mysqld"),
		TmpDir:       env("DBAGENT_TMPDIR", "/tmp"),
		RootPassword: os.Getenv(platform.EnvAgentRootPassword),
		Log:          log,
	}
	// In a container the kubelet provides the termination message file; the operator reads a
	// restore's progress and a bootstrap's error from it.
	if _, err := os.Stat(terminationLog); err == nil {
		b.Report = terminationLog
	}
	if b.Engine == replication.MariaDB && os.Getenv(platform.EnvAgentPeerDomain) != "" {
		shardIndex, err := strconv.Atoi(env(platform.EnvAgentShard, "0"))
		if err != nil {
			return fmt.Errorf("%s: %w", platform.EnvAgentShard, err)
		}
		_, port, err := net.SplitHostPort(env(platform.EnvAgentAddr, ":9080"))
		if err != nil {
			return fmt.Errorf("%s: %w", platform.EnvAgentAddr, err)
		}
		b.Clone = &dbagent.CloneSource{
			// A rebuild copies the primary of record, as the mounted shard map has it now.
			PrimaryURL: func() (string, error) {
				t, err := dbagent.MapTopology(os.Getenv(platform.EnvAgentShardMap), shardIndex, os.Getenv(platform.EnvAgentPrimaryPod))
				if err != nil {
					return "", err
				}
				if t.Primary == "" || t.Primary == os.Getenv(platform.EnvAgentPod) {
					return "", fmt.Errorf("the shard map names this pod (%q) or no pod as the primary: there is nothing to copy", t.Primary)
				}
				return "http://" + net.JoinHostPort(t.Primary+"."+os.Getenv(platform.EnvAgentPeerDomain), port), nil
			},
			Client: agentapi.Client{Token: agentapi.Token(os.Getenv(platform.EnvAgentReplicationPassword))},
		}
		b.Seed = os.Getenv(platform.EnvAgentRole) == "replica"
		b.ServerConfig = os.Getenv(platform.EnvAgentServerConfig)
		if b.Restore, err = restoreSource(shardIndex); err != nil {
			return err
		}
	}
	return b.Run(ctx)
}

// restoreSource reads where a new platform's shard is restored from (nil: it is not).
func restoreSource(shard int) (*dbagent.RestoreSource, error) {
	endpoint := os.Getenv(platform.EnvRestoreEndpoint)
	if endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%s %q: want http(s)://host[:port]", platform.EnvRestoreEndpoint, endpoint)
	}
	src := &dbagent.RestoreSource{Shard: shard, Store: backup.StoreConfig{Endpoint: u.Host, Insecure: u.Scheme == "http",
		Bucket: os.Getenv(platform.EnvRestoreBucket), Prefix: os.Getenv(platform.EnvRestorePrefix), Region: os.Getenv(platform.EnvRestoreRegion)}}
	if src.Store.AccessKey, err = dbagent.ReadKey(os.Getenv(platform.EnvRestoreAccessKeyFile)); err != nil {
		return nil, fmt.Errorf("reading the restore source's access key: %w", err)
	}
	if src.Store.SecretKey, err = dbagent.ReadKey(os.Getenv(platform.EnvRestoreSecretKeyFile)); err != nil {
		return nil, fmt.Errorf("reading the restore source's secret key: %w", err)
	}
	if v := os.Getenv(platform.EnvRestorePointInTime); v != "" {
		if src.Until, err = time.Parse(time.RFC3339, v); err != nil {
			return nil, fmt.Errorf("%s: %w", platform.EnvRestorePointInTime, err)
		}
	}
	return src, nil
}

func run(log *slog.Logger) error {
	cfg := dbagent.Config{
		Role:     env(platform.EnvAgentRole, "primary"),
		Engine:   replication.Engine(env(platform.EnvAgentEngine, string(replication.MariaDB))),
		Pod:      env(platform.EnvAgentPod, "local-0"),
		Primary:  os.Getenv(platform.EnvAgentPrimaryPod),
		ShardMap: os.Getenv(platform.EnvAgentShardMap),
		Credentials: replication.Credentials{
			AppPassword:         os.Getenv(platform.EnvAgentAppPassword),
			ReplicationPassword: os.Getenv(platform.EnvAgentReplicationPassword),
			ExporterPassword:    os.Getenv(platform.EnvAgentExporterPassword),
		},
	}
	var err error
	if cfg.Shard, err = strconv.Atoi(env(platform.EnvAgentShard, "0")); err != nil {
		return fmt.Errorf("DBAGENT_SHARD: %w", err)
	}
	if cfg.Ordinal, err = dbagent.OrdinalFromPodName(cfg.Pod); err != nil {
		return err
	}
	if cfg.MaxLag, err = time.ParseDuration(env("DBAGENT_MAX_LAG", "10s")); err != nil {
		return fmt.Errorf("DBAGENT_MAX_LAG: %w", err)
	}
	if cfg.Interval, err = time.ParseDuration(env("DBAGENT_INTERVAL", "5s")); err != nil {
		return fmt.Errorf("DBAGENT_INTERVAL: %w", err)
	}
	if cfg.FenceAfter, err = time.ParseDuration(env(platform.EnvAgentFenceAfter, "15s")); err != nil {
		return fmt.Errorf("%s: %w", platform.EnvAgentFenceAfter, err)
	}
	if cfg.SemiSyncTimeout, err = time.ParseDuration(env(platform.EnvAgentSemiSyncTimeout, "1s")); err != nil {
		return fmt.Errorf("%s: %w", platform.EnvAgentSemiSyncTimeout, err)
	}
	if cfg.SemiSyncTimeout < 0 {
		return fmt.Errorf("%s must not be negative", platform.EnvAgentSemiSyncTimeout)
	}
	if cfg.Role != "primary" && cfg.Role != "replica" {
		return fmt.Errorf("DBAGENT_ROLE must be primary or replica, not %q", cfg.Role)
	}
	if cfg.Primary == "" {
		return fmt.Errorf("%s is required: the pod that is the shard's primary", platform.EnvAgentPrimaryPod)
	}
	domain := os.Getenv(platform.EnvAgentPeerDomain)
	if domain == "" {
		return fmt.Errorf("%s is required: the DNS suffix of the shard's pods", platform.EnvAgentPeerDomain)
	}
	cfg.Peer = func(pod string) (string, int) { return pod + "." + domain, 3306 }
	cfg.Token = agentapi.Token(cfg.Credentials.ReplicationPassword)
	if cfg.Archive, err = archiveConfig(); err != nil {
		return err
	}
	if dir := os.Getenv(platform.EnvAgentDataDir); dir != "" && cfg.Engine == replication.MariaDB {
		// Beside its data directory (the agent runs in the database image): it copies its server
		// for a rebuild of a diverged replica, and schedules its own.
		cfg.Backup = &backup.Server{Host: "127.0.0.1", Port: 3306, User: "root", Password: os.Getenv(platform.EnvAgentRootPassword), DataDir: dir}
	}

	dsn := mysql.NewConfig()
	dsn.User, dsn.Passwd, dsn.Net, dsn.Addr = "root", os.Getenv(platform.EnvAgentRootPassword), "tcp", env("DBAGENT_DB_ADDR", "127.0.0.1:3306")
	dsn.InterpolateParams = true
	dsn.Timeout = 5 * time.Second
	db, err := sql.Open("mysql", dsn.FormatDSN())
	if err != nil {
		return err
	}
	defer func() { _ = db.Close() }()
	db.SetMaxOpenConns(2)

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	agent := dbagent.New(cfg, db, log)
	srv := &http.Server{Addr: env(platform.EnvAgentAddr, ":9080"), Handler: agent.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go agent.Run(ctx)
	log.Info("dbagent started", "pod", cfg.Pod, "primary", cfg.Primary, "shard", cfg.Shard, "serverID", cfg.ServerID(), "addr", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// archiveConfig reads where the primary archives its binary logs (nil: nowhere).
func archiveConfig() (*dbagent.ArchiveConfig, error) {
	endpoint := os.Getenv(platform.EnvBackupEndpoint)
	if endpoint == "" {
		return nil, nil
	}
	u, err := url.Parse(endpoint)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("%s %q: want http(s)://host[:port]", platform.EnvBackupEndpoint, endpoint)
	}
	cfg := &dbagent.ArchiveConfig{
		Store: backup.StoreConfig{Endpoint: u.Host, Insecure: u.Scheme == "http", Bucket: os.Getenv(platform.EnvBackupBucket),
			Prefix: os.Getenv(platform.EnvBackupPrefix), Region: os.Getenv(platform.EnvBackupRegion)},
		AccessKeyFile: os.Getenv(platform.EnvBackupAccessKeyFile),
		SecretKeyFile: os.Getenv(platform.EnvBackupSecretKeyFile),
	}
	if cfg.Interval, err = time.ParseDuration(env(platform.EnvBackupArchiveInterval, "5m")); err != nil || cfg.Interval <= 0 {
		return nil, fmt.Errorf("%s: want a positive duration", platform.EnvBackupArchiveInterval)
	}
	if cfg.KeepFor, err = time.ParseDuration(env(platform.EnvBackupBinlogRetention, "168h")); err != nil || cfg.KeepFor < 0 {
		return nil, fmt.Errorf("%s: want a duration", platform.EnvBackupBinlogRetention)
	}
	return cfg, nil
}
