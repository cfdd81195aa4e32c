// Command devstack is `make run-apps`: the whole social network on this machine, for a person to
// use in a browser. It starts two MariaDB shards (and a replica of shard 0) and Redis on free
// ports in temporary directories, an embedded Kafka (franz-go's kfake: no Kafka broker can be
// installed here), an SMTP sink that prints the emails it receives, and every service, then
// waits for Ctrl-C and removes everything it started.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/scalestack/scalestack/apps/localstack"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/internal/localservers"
)

func main() {
	port := flag.Int("port", 8080, "the gateway's port (the web UI and API)")
	verbose := flag.Bool("v", false, "print the services' logs")
	flag.Parse()
	service.SetGCPercent()
	if !*verbose {
		slog.SetDefault(slog.New(slog.NewJSONHandler(io.Discard, nil)))
	}
	session := localservers.NewSession("devstack")
	defer session.Close()
	start := time.Now()
	st := localstack.Start(session, localstack.Options{Replica: true, GatewayPort: *port, Configure: func(c *service.Config) {
		c.LogFormat = "text"
		c.CelebrityFollowers = 100
	}})
	fmt.Printf("scalestack is up in %s\n\n", time.Since(start).Round(time.Millisecond))
	fmt.Printf("  web UI and API   %s/\n", st.Gateway())
	for _, name := range []string{service.User, service.Post, service.Feed, service.Worker} {
		fmt.Printf("  %-16s %s  (/metrics, /readyz)\n", name, st.URLs[name])
	}
	fmt.Printf("  MariaDB shards   %s, %s (replica of shard 0: %s; root, no password)\n", st.DBs[0].Addr(), st.DBs[1].Addr(), st.Replica.Addr())
	fmt.Printf("  Redis            %s\n", st.Redis.Addr())
	fmt.Printf("  Kafka (kfake)    %s\n", st.Config.KafkaBrokers[0])
	fmt.Printf("  SMTP sink        %s (emails are printed below)\n\nCtrl-C stops everything.\n\n", st.SMTP.Addr())
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	seen := 0
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fmt.Println("\nstopping")
			return
		case <-t.C:
		}
		mails := st.SMTP.Mails()
		for _, m := range mails[seen:] {
			fmt.Printf("email to %v: %s\n  %s\n", m.To, m.Subject, m.Body)
		}
		seen = len(mails)
	}
}
