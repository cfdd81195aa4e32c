// Package localstack runs the whole social network on one machine: two MariaDB shards (with a
// replica of shard 0), Redis, an embedded Kafka (franz-go's kfake, which speaks the real Kafka
// protocol: no Kafka broker can be installed on these machines), an SMTP sink, and every app
// service in this process, each on its own loopback port and talking to the others over HTTP.
// The apps tests, `make run-apps` and `make bench-apps` all start it.
package localstack

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/scalestack/scalestack/apps/auth"
	"github.com/scalestack/scalestack/apps/events"
	"github.com/scalestack/scalestack/apps/service"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/replication"
	"github.com/scalestack/scalestack/pkg/shard"
)

// Options shape a stack.
type Options struct {
	// Shards is the number of physical shards (default 2).
	Shards int
	// Replica adds a read replica to shard 0.
	Replica bool
	// NoKafka starts without a broker (events wait in the outbox); StartKafka starts it.
	NoKafka bool
	// GatewayPort fixes the gateway's port (0: a free one).
	GatewayPort int
	// Services to run (default: all).
	Services []string
	// Configure adjusts the services' configuration.
	Configure func(*service.Config)
	// TopicPrefix goes before every topic and consumer group name, as spec.kafka.topicPrefix
	// makes the operator configure it; the broker is seeded with the prefixed topics.
	TopicPrefix string
	// RedisMaxMemory (default 64mb), InnoDBBufferPool (default 16M).
	RedisMaxMemory   string
	InnoDBBufferPool string
}

// Stack is a running local stack.
type Stack struct {
	t           localservers.Lifetime
	DBs         []*localservers.MariaDB
	Replica     *localservers.MariaDB
	Redis       *localservers.Redis
	SMTP        *localservers.SMTP
	Kafka       *kfake.Cluster
	KafkaPort   int
	kafkaDir    string
	topicPrefix string
	// kafkaListener holds the Kafka port from the start until the broker takes it over, so no
	// other process can take the port while the broker is "down".
	kafkaListener net.Listener
	Config        service.Config
	Apps          map[string]*service.App
	URLs          map[string]string
	AppPass       string
	ports         map[string]int
	cancel        map[string]context.CancelFunc
	done          map[string]chan struct{}
}

// Topics are the topics the apps use, and their dead-letter twins.
var Topics = []string{events.TopicUserCreated, events.TopicPostCreated, events.TopicFollowCreated,
	events.TopicUserCreated + events.DLQSuffix, events.TopicPostCreated + events.DLQSuffix, events.TopicFollowCreated + events.DLQSuffix}

func randomSecret() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// Start starts the stack; everything stops when t's cleanups run.
func Start(t localservers.Lifetime, opts Options) *Stack {
	t.Helper()
	if opts.Shards == 0 {
		opts.Shards = 2
	}
	if len(opts.Services) == 0 {
		opts.Services = []string{service.User, service.Post, service.Feed, service.Gateway, service.Worker}
	}
	s := &Stack{t: t, Apps: map[string]*service.App{}, URLs: map[string]string{}, AppPass: randomSecret(), topicPrefix: opts.TopicPrefix,
		ports: map[string]int{}, cancel: map[string]context.CancelFunc{}, done: map[string]chan struct{}{}}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	creds := replication.Credentials{AppPassword: s.AppPass, ReplicationPassword: randomSecret(), ExporterPassword: randomSecret()}
	mopts := localservers.MariaDBOptions{BufferPool: opts.InnoDBBufferPool}
	for i := range opts.Shards {
		m := localservers.StartMariaDBWith(t, mopts)
		c := &replication.Client{DB: m.DB(t), Engine: replication.MariaDB}
		if err := c.EnsureUsers(ctx, creds); err != nil {
			t.Fatalf("shard %d users: %v", i, err)
		}
		if err := c.ConfigurePrimary(ctx); err != nil {
			t.Fatalf("shard %d primary: %v", i, err)
		}
		s.DBs = append(s.DBs, m)
	}
	if opts.Replica {
		s.Replica = localservers.StartMariaDBWith(t, mopts)
		c := &replication.Client{DB: s.Replica.DB(t), Engine: replication.MariaDB}
		if _, err := c.ConfigureReplica(ctx, replication.Source{Host: "127.0.0.1", Port: s.DBs[0].Port, User: "replication", Password: creds.ReplicationPassword}); err != nil {
			t.Fatalf("replica: %v", err)
		}
	}
	m, err := shard.Build(opts.Shards, func(i int) (string, string) {
		if i == 0 && s.Replica != nil {
			return s.DBs[0].Addr(), s.Replica.Addr()
		}
		return s.DBs[i].Addr(), ""
	})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	mapFile := filepath.Join(dir, "shardmap.json")
	raw, _ := json.Marshal(m)
	if err := os.WriteFile(mapFile, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Redis = localservers.StartRedisWith(t, opts.RedisMaxMemory)
	s.SMTP = localservers.StartSMTP(t)
	kl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.kafkaListener, s.KafkaPort = kl, kl.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() {
		if s.kafkaListener != nil {
			_ = s.kafkaListener.Close()
		}
	})
	s.kafkaDir = filepath.Join(dir, "kafka")
	if !opts.NoKafka {
		s.StartKafka()
	}
	cfg := service.Defaults()
	cfg.ShardMapFile = mapFile
	cfg.DBUser, cfg.DBPassword = "app", s.AppPass
	cfg.RedisAddr = s.Redis.Addr()
	cfg.KafkaBrokers = []string{fmt.Sprintf("127.0.0.1:%d", s.KafkaPort)}
	cfg.TopicPrefix = opts.TopicPrefix
	cfg.TokenKey = []byte(randomSecret())
	cfg.SMTPAddr = s.SMTP.Addr()
	cfg.Hash = auth.DefaultHashParams
	ports := s.ports
	for _, name := range opts.Services {
		ports[name] = localservers.FreePort(t)
		if name == service.Gateway && opts.GatewayPort != 0 {
			ports[name] = opts.GatewayPort
		}
		s.URLs[name] = fmt.Sprintf("http://127.0.0.1:%d", ports[name])
	}
	cfg.UserURL, cfg.PostURL, cfg.FeedURL = s.URLs[service.User], s.URLs[service.Post], s.URLs[service.Feed]
	if opts.Configure != nil {
		opts.Configure(&cfg)
	}
	s.Config = cfg
	for _, name := range opts.Services {
		s.StartService(name, ports[name])
	}
	return s
}

// StartService starts (or starts again) one service on port and waits until it is ready.
func (s *Stack) StartService(name string, port int) {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a, err := service.New(ctx, name, s.Config)
	if err != nil {
		cancel()
		s.t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := a.Serve(ctx, fmt.Sprintf("127.0.0.1:%d", port), 0); err != nil {
			fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		}
	}()
	s.Apps[name], s.cancel[name], s.done[name] = a, cancel, done
	s.t.Cleanup(func() { s.StopService(name) })
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", port))
		if err == nil {
			_ = res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("%s did not become ready: %v", name, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// RestartService starts a stopped service again on its port.
func (s *Stack) RestartService(name string) { s.t.Helper(); s.StartService(name, s.ports[name]) }

// StopService stops one service (its in-flight work ends, its loops stop).
func (s *Stack) StopService(name string) {
	if c, ok := s.cancel[name]; ok {
		c()
		<-s.done[name]
		delete(s.cancel, name)
	}
}

// StartKafka starts the embedded broker on the stack's Kafka port, with the topics, keeping its
// data across restarts.
func (s *Stack) StartKafka() {
	s.t.Helper()
	listen := func(network, addr string) (net.Listener, error) {
		if l := s.kafkaListener; l != nil {
			s.kafkaListener = nil
			return l, nil
		}
		return net.Listen(network, addr)
	}
	topics := make([]string, 0, len(Topics))
	for _, t := range Topics {
		topics = append(topics, s.topicPrefix+t)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.Ports(s.KafkaPort), kfake.ListenFn(listen), kfake.DataDir(s.kafkaDir), kfake.SeedTopics(3, topics...))
	if err != nil {
		s.t.Fatalf("kfake: %v", err)
	}
	s.Kafka = c
	s.t.Cleanup(s.StopKafka)
}

// StopKafka stops the broker.
func (s *Stack) StopKafka() {
	if s.Kafka != nil {
		s.Kafka.Close()
		s.Kafka = nil
	}
}

// Gateway is the gateway's base URL.
func (s *Stack) Gateway() string { return s.URLs[service.Gateway] }

// WaitReplica waits until shard 0's replica has applied everything its primary has written
// (MariaDB GTIDs), so that a measurement does not share the machine with a catch-up.
func (s *Stack) WaitReplica(ctx context.Context) error {
	if s.Replica == nil {
		return nil
	}
	p, r := s.DBs[0].DB(s.t), s.Replica.DB(s.t)
	for {
		var want, got string
		if err := p.QueryRowContext(ctx, "SELECT @@gtid_binlog_pos").Scan(&want); err != nil {
			return err
		}
		if err := r.QueryRowContext(ctx, "SELECT @@gtid_slave_pos").Scan(&got); err != nil {
			return err
		}
		if want == got {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("replica at %s, primary at %s: %w", got, want, ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
}
