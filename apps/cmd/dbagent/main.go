// Command dbagent runs beside each shard's database container: it sets up and watches GTID
// replication and answers the pod's readiness probe. See package dbagent.
package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/go-sql-driver/mysql"

	"github.com/scalestack/scalestack/apps/dbagent"
	"github.com/scalestack/scalestack/pkg/replication"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	if err := run(log); err != nil {
		log.Error("dbagent stopped", "error", err.Error())
		os.Exit(1)
	}
}

func env(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func run(log *slog.Logger) error {
	cfg := dbagent.Config{
		Role:        env("DBAGENT_ROLE", "primary"),
		Engine:      replication.Engine(env("DBAGENT_ENGINE", string(replication.MariaDB))),
		PrimaryHost: os.Getenv("DBAGENT_PRIMARY_HOST"),
		PrimaryPort: 3306,
		Credentials: replication.Credentials{
			AppPassword:         os.Getenv("DBAGENT_APP_PASSWORD"),
			ReplicationPassword: os.Getenv("DBAGENT_REPLICATION_PASSWORD"),
			ExporterPassword:    os.Getenv("DBAGENT_EXPORTER_PASSWORD"),
		},
	}
	var err error
	if cfg.Shard, err = strconv.Atoi(env("DBAGENT_SHARD", "0")); err != nil {
		return fmt.Errorf("DBAGENT_SHARD: %w", err)
	}
	if cfg.Ordinal, err = dbagent.OrdinalFromPodName(env("POD_NAME", "local-0")); err != nil {
		return err
	}
	if cfg.MaxLag, err = time.ParseDuration(env("DBAGENT_MAX_LAG", "10s")); err != nil {
		return fmt.Errorf("DBAGENT_MAX_LAG: %w", err)
	}
	if cfg.Interval, err = time.ParseDuration(env("DBAGENT_INTERVAL", "5s")); err != nil {
		return fmt.Errorf("DBAGENT_INTERVAL: %w", err)
	}
	if cfg.Role != "primary" && cfg.Role != "replica" {
		return fmt.Errorf("DBAGENT_ROLE must be primary or replica, not %q", cfg.Role)
	}
	if cfg.Role == "replica" && cfg.PrimaryHost == "" {
		return errors.New("DBAGENT_PRIMARY_HOST is required for a replica")
	}

	dsn := mysql.NewConfig()
	dsn.User, dsn.Passwd, dsn.Net, dsn.Addr = "root", os.Getenv("DBAGENT_ROOT_PASSWORD"), "tcp", env("DBAGENT_DB_ADDR", "127.0.0.1:3306")
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
	srv := &http.Server{Addr: env("DBAGENT_ADDR", ":9080"), Handler: agent.Handler(), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(shutdown)
	}()
	go agent.Run(ctx)
	log.Info("dbagent started", "role", cfg.Role, "shard", cfg.Shard, "serverID", cfg.ServerID(), "addr", srv.Addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
