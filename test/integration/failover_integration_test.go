package integration

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	_ "github.com/go-sql-driver/mysql"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	eventsv1 "k8s.io/api/events/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	scalestackv1alpha1 "github.com/scalestack/scalestack/api/v1alpha1"
	"github.com/scalestack/scalestack/apps/dbagent"
	"github.com/scalestack/scalestack/controllers/render"
	"github.com/scalestack/scalestack/internal/localservers"
	"github.com/scalestack/scalestack/pkg/agentapi"
	"github.com/scalestack/scalestack/pkg/backup"
	"github.com/scalestack/scalestack/pkg/replication"
	"github.com/scalestack/scalestack/pkg/shard"
)

// dbPod is a database pod of the test: a real MariaDB server, a real agent beside it, and the Pod
// object the operator sees (envtest has no kubelet, so the test plays it: readiness and IP).
type dbPod struct {
	name   string
	server *localservers.MariaDB
	agent  *dbagent.Agent
	url    string // the agent's API
}

// createDBPod makes the Pod object of a shard's database pod, labelled as its StatefulSet would.
func createDBPod(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, shardIndex int, role, name string) {
	t.Helper()
	labels := sp.Labels("database")
	labels[scalestackv1alpha1.LabelShard] = fmt.Sprint(shardIndex)
	labels[scalestackv1alpha1.LabelRole] = role
	labels[render.LabelPodName] = name
	pod := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: sp.Namespace, Labels: labels},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "database", Image: "mariadb"}}}}
	if err := k8s.Create(context.Background(), pod); err != nil {
		t.Fatal(err)
	}
}

func setPodReady(t *testing.T, ns, name string, ready bool) {
	t.Helper()
	eventually(t, fmt.Sprintf("pod %s ready=%v", name, ready), func() error {
		p, err := get(t, &corev1.Pod{}, ns, name)
		if err != nil {
			return err
		}
		st := corev1.ConditionFalse
		if ready {
			st = corev1.ConditionTrue
		}
		p.Status.PodIP = "10.0.0.1"
		p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: st, LastTransitionTime: metav1.Now()}}
		// The agent runs (the real one, beside the test's server), as a kubelet would report it.
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "agent", ContainerID: "containerd://test-" + name,
			Ready: ready, State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.Now()}}}}
		return k8s.Status().Update(context.Background(), p)
	})
}

func rowCount(db *sql.DB) int {
	var n int
	if err := db.QueryRow("SELECT COUNT(*) FROM social.posts").Scan(&n); err != nil {
		return -1
	}
	return n
}

func shardMapOf(t *testing.T, sp *scalestackv1alpha1.SocialPlatform) (*shard.Map, error) {
	cm, err := get(t, &corev1.ConfigMap{}, sp.Namespace, sp.ShardMapName())
	if err != nil {
		return nil, err
	}
	return shard.Parse([]byte(cm.Data[render.ShardMapKey]))
}

// eventNotes lists the namespace's events, for a failure's message.
func eventNotes(t *testing.T, ns string) string {
	list := &eventsv1.EventList{}
	if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		return err.Error()
	}
	var out []string
	for _, e := range list.Items {
		if e.Type == corev1.EventTypeWarning || strings.Contains(e.Reason, "over") {
			out = append(out, e.Reason+": "+e.Note)
		}
	}
	return strings.Join(out, " | ")
}

func hasEvent(t *testing.T, ns, reason, substr string) func() error {
	return func() error {
		list := &eventsv1.EventList{}
		if err := k8s.List(context.Background(), list, client.InNamespace(ns)); err != nil {
			return err
		}
		for _, e := range list.Items {
			if e.Reason == reason && strings.Contains(e.Note, substr) {
				return nil
			}
		}
		return fmt.Errorf("no %s event mentioning %q among %d", reason, substr, len(list.Items))
	}
}

// realShard is shard 0 of a platform played by real MariaDB servers and agents: the primary and
// replicas-0 pods, ready, with social.posts created on the primary.
type realShard struct {
	ns                       string
	creds                    replication.Credentials
	primaryName, replicaName string
	servers                  map[string]*localservers.MariaDB
	pods                     map[string]*dbPod
	apps                     map[string]*sql.DB
}

func (r *realShard) app(name string) *sql.DB { return r.apps[name] }

// startRealShard starts the servers and agents of sp's shard 0 (created already, with one replica
// per shard) and the Pod objects the operator sees.
// configure, when given, adjusts each agent's configuration.
func startRealShard(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, configure ...func(pod string, cfg *dbagent.Config)) *realShard {
	t.Helper()
	ctx := context.Background()
	ns := sp.Namespace
	var secret *corev1.Secret
	eventually(t, "the credentials Secret", func() error {
		var err error
		secret, err = get(t, &corev1.Secret{}, ns, sp.DatabaseSecretName())
		return err
	})
	creds := replication.Credentials{AppPassword: string(secret.Data[render.SecretKeyApp]),
		ReplicationPassword: string(secret.Data[render.SecretKeyReplication]), ExporterPassword: string(secret.Data[render.SecretKeyExporter])}

	primaryName, replicaName := sp.ShardDefaultPrimaryPod(0), sp.ShardReplicasName(0)+"-0"
	servers := map[string]*localservers.MariaDB{primaryName: localservers.StartMariaDB(t), replicaName: localservers.StartMariaDB(t)}
	for _, m := range servers {
		// As the operator starts them: read-only until the agent decides.
		if _, err := m.DB(t).Exec("SET GLOBAL read_only = ON"); err != nil {
			t.Fatal(err)
		}
	}
	pods := map[string]*dbPod{}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	for name, role := range map[string]string{primaryName: "primary", replicaName: "replica"} {
		cfg := dbagent.Config{Role: role, Engine: replication.MariaDB, Shard: 0, Pod: name, Primary: primaryName,
			Peer: func(pod string) (string, int) {
				if m := servers[pod]; m != nil {
					return "127.0.0.1", m.Port
				}
				return "unknown", 3306
			},
			Credentials: creds, MaxLag: 10 * time.Second, Interval: 300 * time.Millisecond, FenceAfter: 5 * time.Second,
			PromoteWait: 10 * time.Second, SemiSyncTimeout: 5 * time.Second, Token: agentapi.Token(creds.ReplicationPassword)}
		cfg.Backup = &backup.Server{Host: "127.0.0.1", Port: servers[name].Port, User: "root", DataDir: servers[name].DataDir()}
		for _, f := range configure {
			f(name, &cfg)
		}
		a := dbagent.New(cfg, servers[name].DB(t), logger)
		srv := httptest.NewServer(a.Handler())
		t.Cleanup(srv.Close)
		runCtx, cancel := context.WithCancel(ctx)
		t.Cleanup(cancel)
		go a.Run(runCtx)
		env.SetAgent(ns, name, srv.URL)
		pods[name] = &dbPod{name: name, server: servers[name], agent: a, url: srv.URL}

		createDBPod(t, sp, 0, role, name)
		setPodReady(t, ns, name, true)
	}
	primaryDB := servers[primaryName].DB(t)
	// Root writes through read_only: ask the server, which its agent makes writable.
	eventually(t, "the primary writable", func() error {
		var ro int
		if err := primaryDB.QueryRow("SELECT @@GLOBAL.read_only").Scan(&ro); err != nil {
			return err
		}
		if ro != 0 {
			return fmt.Errorf("read_only is %d", ro)
		}
		_, err := primaryDB.Exec("CREATE DATABASE IF NOT EXISTS social")
		return err
	})
	if _, err := primaryDB.Exec("CREATE TABLE social.posts (id BIGINT PRIMARY KEY, body TEXT)"); err != nil {
		t.Fatal(err)
	}
	apps := map[string]*sql.DB{}
	for name, m := range servers {
		db, err := sql.Open("mysql", m.DSN("app", creds.AppPassword))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = db.Close() })
		apps[name] = db
	}
	return &realShard{ns: ns, creds: creds, primaryName: primaryName, replicaName: replicaName, servers: servers, pods: pods, apps: apps}
}

// The operator fails a shard over when its primary has been unavailable for failover.after, with
// real MariaDB servers and agents behind the pods: the most advanced replica is promoted, the
// shard map and the -primary Service follow it, no acknowledged row is lost; the old primary
// rejoins as a replica, and a switchover asked for on the new primary's pod hands the primary
// back with no write lost.
// waitReplicaLagKnown waits for a replica's agent to report it ready with its lag known, as a
// replica pod's readiness requires: the replica may have caught up within one agent tick of
// being pointed at the primary.
func (r *realShard) waitReplicaLagKnown(t *testing.T, pod string) {
	t.Helper()
	eventually(t, "the replica's agent reports it ready with its lag", func() error {
		st, err := r.pods[pod].agent.Status(context.Background())
		if err != nil {
			return err
		}
		if !st.Ready || st.LagSeconds == nil {
			return fmt.Errorf("ready %v (%s), lag %v", st.Ready, st.Reason, st.LagSeconds)
		}
		return nil
	})
}

// waitPrimaryOfRecord waits for the shard map to record pod as shard 0's primary at epoch.
func waitPrimaryOfRecord(t *testing.T, sp *scalestackv1alpha1.SocialPlatform, pod string, epoch int64) {
	t.Helper()
	eventually(t, "the shard map records the new primary", func() error {
		m, err := shardMapOf(t, sp)
		if err != nil {
			return err
		}
		if p := m.Shards[0]; p.PrimaryPod != pod || p.Epoch != epoch {
			return fmt.Errorf("shard 0 %+v; events: %s", p, eventNotes(t, sp.Namespace))
		}
		return nil
	})
}

// startWriter inserts rows with ids from first on, one per pause, as the apps' pooled
// connection would, until the returned function stops it and returns the ids acknowledged.
func startWriter(db *sql.DB, first int, text string, pause time.Duration) (stop func() []int) {
	quit := make(chan struct{})
	done := make(chan []int)
	go func() {
		var acked []int
		for i := first; ; i++ {
			select {
			case <-quit:
				done <- acked
				return
			default:
			}
			if _, err := db.Exec("INSERT INTO social.posts VALUES (?, ?)", i, text); err == nil {
				acked = append(acked, i)
			}
			time.Sleep(pause)
		}
	}()
	return func() []int {
		close(quit)
		return <-done
	}
}

func TestShardFailoverAndSwitchoverWithRealAgents(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](1)
	sp.Spec.Database.Failover = scalestackv1alpha1.FailoverSpec{After: &metav1.Duration{Duration: 10 * time.Second}}
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	rs := startRealShard(t, sp)
	ns, servers, app := rs.ns, rs.servers, rs.app
	primaryName, replicaName := rs.primaryName, rs.replicaName
	acknowledged := 0
	for i := range 200 {
		if _, err := app(primaryName).Exec("INSERT INTO social.posts VALUES (?, 'x')", i); err != nil {
			t.Fatal(err)
		}
		acknowledged++
	}
	replicaDB := servers[replicaName].DB(t)
	eventually(t, "the replica has every row", func() error {
		if n := rowCount(replicaDB); n != acknowledged {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	rs.waitReplicaLagKnown(t, replicaName)

	// The primary dies. Before failover.after nothing moves; then the replica is promoted.
	servers[primaryName].Stop()
	setPodReady(t, ns, primaryName, false)
	gone := time.Now()
	waitPrimaryOfRecord(t, sp, replicaName, 1)
	if waited := time.Since(gone); waited < 10*time.Second {
		t.Errorf("failed over after %v, before failover.after (10s)", waited)
	}
	t.Logf("failover recorded %v after the primary's pod turned unready (failover.after 10s)", time.Since(gone).Round(100*time.Millisecond))
	// The Service follows the map in the tier's next step.
	eventually(t, "the -primary Service selects the new primary", func() error {
		svc, err := get(t, &corev1.Service{}, ns, sp.ShardPrimaryName(0))
		if err != nil {
			return err
		}
		if got := svc.Spec.Selector[render.LabelPodName]; got != replicaName {
			return fmt.Errorf("-primary Service selects %q", got)
		}
		return nil
	})
	eventually(t, "the promoted replica takes writes with every acknowledged row", func() error {
		if _, err := app(replicaName).Exec("INSERT INTO social.posts VALUES (?, 'after failover')", 1000+acknowledged); err != nil {
			return err
		}
		acknowledged++
		return nil
	})
	if n := rowCount(replicaDB); n != acknowledged {
		t.Errorf("%d rows on the new primary, %d acknowledged", n, acknowledged)
	}
	eventually(t, "a ShardFailover event", hasEvent(t, ns, scalestackv1alpha1.EventShardFailover, replicaName))
	eventually(t, "status names the primary of record", func() error {
		cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
		if err != nil {
			return err
		}
		if len(cur.Status.Shards) != 1 || cur.Status.Shards[0].Primary != replicaName || cur.Status.Shards[0].Epoch != 1 {
			return fmt.Errorf("shards %+v", cur.Status.Shards)
		}
		return nil
	})

	// The old primary returns: it was told of the failover while its server was down, so it
	// rejoins as a replica of the new primary.
	servers[primaryName].Restart()
	oldDB := servers[primaryName].DB(t)
	eventually(t, "the old primary replicates from the new one", func() error {
		if n := rowCount(oldDB); n != acknowledged {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	setPodReady(t, ns, primaryName, true)

	// A switchover back, under writes, that the operator makes itself: replicasPerShard shrinks
	// to 0, which would delete the primary of record (the replicas' pod 0); the StatefulSet keeps
	// it until the primary is handed back to the shard's first pod. (The annotation's switchover
	// is the real-pods test's.)
	stopWriter := startWriter(app(replicaName), 5000, "during switchover", 5*time.Millisecond)
	updateSP(t, sp, func(sp *scalestackv1alpha1.SocialPlatform) { sp.Spec.Database.ReplicasPerShard = ptr.To[int32](0) })
	eventually(t, "the switchover recorded", func() error {
		m, err := shardMapOf(t, sp)
		if err != nil {
			return err
		}
		if p := m.Shards[0]; p.PrimaryPod != primaryName || p.Epoch != 2 {
			if r, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardReplicasName(0)); err == nil && ptr.Deref(r.Spec.Replicas, -1) < 1 {
				t.Errorf("the replicas StatefulSet scaled to %d while it holds the primary %s", *r.Spec.Replicas, p.PrimaryPod)
			}
			return fmt.Errorf("shard 0 %+v; events: %s", p, eventNotes(t, ns))
		}
		return nil
	})
	acknowledged += len(stopWriter())
	eventually(t, "the old primary is primary again and has every acknowledged row", func() error {
		if _, err := app(primaryName).Exec("INSERT INTO social.posts VALUES (?, 'after switchover')", 9999); err != nil {
			return err
		}
		acknowledged++
		if n := rowCount(oldDB); n != acknowledged {
			return fmt.Errorf("%d rows, %d acknowledged", n, acknowledged)
		}
		return nil
	})
	eventually(t, "the replicas scale to 0 once the primary is handed back", func() error {
		r, err := get(t, &appsv1.StatefulSet{}, ns, sp.ShardReplicasName(0))
		if err != nil {
			return err
		}
		if n := ptr.Deref(r.Spec.Replicas, -1); n != 0 {
			return fmt.Errorf("%d replicas", n)
		}
		return nil
	})
	eventually(t, "a ShardSwitchover event", hasEvent(t, ns, scalestackv1alpha1.EventShardSwitchover, primaryName))
	eventually(t, "the demoted primary replicates again", func() error {
		if n := rowCount(replicaDB); n != acknowledged {
			return fmt.Errorf("%d rows, %d acknowledged", n, acknowledged)
		}
		return nil
	})
}

// A primary whose pod turned unready while its server still serves (a pod shutting down, a
// readiness failing) is fenced before the replica is promoted: replication here is asynchronous
// (no semi-sync), so without the fence the apps' pooled connection would go on committing on the
// old primary until its agent heard of the failover, and those acknowledged rows would be lost.
func TestAnUnreadyPrimaryThatStillServesIsFencedBeforeTheFailover(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](1)
	sp.Spec.Database.Failover = scalestackv1alpha1.FailoverSpec{After: &metav1.Duration{Duration: 10 * time.Second}}
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	rs := startRealShard(t, sp, func(_ string, cfg *dbagent.Config) { cfg.SemiSyncTimeout = 0 })
	ns, servers, pods, app := rs.ns, rs.servers, rs.pods, rs.app
	primaryName, replicaName := rs.primaryName, rs.replicaName
	rs.waitReplicaLagKnown(t, replicaName)

	// A steady writer on the old primary's pooled connection, as the apps hold one.
	stopWriter := startWriter(app(primaryName), 0, "x", 2*time.Millisecond)
	setPodReady(t, ns, primaryName, false)
	waitPrimaryOfRecord(t, sp, replicaName, 1)
	// The old primary's agent hears of the failover (it re-points as a replica) before the writer
	// stops, so a write it let through after the promotion would be among the acknowledged.
	eventually(t, "the old primary's agent follows epoch 1", func() error {
		st, err := pods[primaryName].agent.Status(ctx)
		if err != nil {
			return err
		}
		if st.Topology.Epoch != 1 {
			return fmt.Errorf("epoch %d", st.Topology.Epoch)
		}
		return nil
	})
	acked := stopWriter()
	if len(acked) == 0 {
		t.Fatal("no write was acknowledged before the failover")
	}
	newDB := servers[replicaName].DB(t)
	var lost []int
	for _, id := range acked {
		var n int
		if err := newDB.QueryRow("SELECT COUNT(*) FROM social.posts WHERE id = ?", id).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			lost = append(lost, id)
		}
	}
	if len(lost) > 0 {
		t.Errorf("%d of %d acknowledged rows are not on the new primary (first %d)", len(lost), len(acked), lost[0])
	}
	eventually(t, "a ShardFailover event saying the old primary was fenced first", hasEvent(t, ns, scalestackv1alpha1.EventShardFailover, "fenced first and "+replicaName+" applied everything"))
	// The old primary rejoins as a replica of the new one: it has nothing the new one lacks.
	eventually(t, "the old primary replicates from the new one", func() error {
		st, err := pods[primaryName].agent.Status(ctx)
		if err != nil {
			return err
		}
		if st.Role != agentapi.RoleReplica || !st.Ready || st.Diverged != "" {
			return fmt.Errorf("%s ready %v (%s), diverged %q", st.Role, st.Ready, st.Reason, st.Diverged)
		}
		return nil
	})
}

// With the only replica's agent unreachable, a gone primary is not replaced, and DatabaseReady
// says why.
func TestFailoverRefusedSaysWhy(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.Failover = scalestackv1alpha1.FailoverSpec{After: &metav1.Duration{Duration: 10 * time.Second}}
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	ns := sp.Namespace
	for name, role := range map[string]string{sp.ShardDefaultPrimaryPod(0): "primary", sp.ShardReplicasName(0) + "-0": "replica"} {
		createDBPod(t, sp, 0, role, name)
		// Nothing listens there: the agents do not answer.
		env.SetAgent(ns, name, "http://127.0.0.1:1")
		setPodReady(t, ns, name, role != "primary")
	}
	eventually(t, "DatabaseReady=False/FailoverRefused", func() error {
		cur, err := get(t, &scalestackv1alpha1.SocialPlatform{}, ns, sp.Name)
		if err != nil {
			return err
		}
		for _, c := range cur.Status.Conditions {
			if c.Type == scalestackv1alpha1.ConditionDatabaseReady && c.Reason == scalestackv1alpha1.ReasonFailoverRefused &&
				strings.Contains(c.Message, "agent did not answer") {
				return nil
			}
		}
		return fmt.Errorf("conditions %+v", cur.Status.Conditions)
	})
	if m, err := shardMapOf(t, sp); err != nil || m.Shards[0].PrimaryPod != "" {
		t.Errorf("the map moved the primary: %+v %v", m, err)
	}
	eventually(t, "a FailoverRefused event", hasEvent(t, ns, scalestackv1alpha1.EventFailoverRefused, "agent did not answer"))
}

// A replica that diverged from its primary (a write only it has, as an old primary's last
// commits) is rebuilt by the operator: it asks the agent to schedule the rebuild and restarts the
// pod, whose bootstrap then copies the primary. The test plays the StatefulSet and the kubelet:
// it runs the bootstrap and recreates the pod.
func TestADivergedReplicaIsRebuiltByTheOperator(t *testing.T) {
	ctx := context.Background()
	sp := loadSample(t, newNamespace(t))
	sp.Spec.Database.Shards = 1
	sp.Spec.Database.ReplicasPerShard = ptr.To[int32](1)
	if err := k8s.Create(ctx, sp); err != nil {
		t.Fatal(err)
	}
	rs := startRealShard(t, sp)
	for i := range 100 {
		if _, err := rs.app(rs.primaryName).Exec("INSERT INTO social.posts VALUES (?, 'x')", i); err != nil {
			t.Fatal(err)
		}
	}
	replica := rs.servers[rs.replicaName]
	eventually(t, "the replica has every row", func() error {
		if n := rowCount(replica.DB(t)); n != 100 {
			return fmt.Errorf("%d rows", n)
		}
		return nil
	})
	replicaRoot := replica.DB(t)
	if _, err := replicaRoot.Exec("INSERT INTO social.posts VALUES (7777, 'only on the replica')"); err != nil {
		t.Fatal(err)
	}
	// Forgetting its source makes the agent point it at the primary again, checking first what
	// the primary lacks (again if the agent restarted replication between the two statements).
	eventually(t, "the replica's agent reports the divergence", func() error {
		st, err := rs.pods[rs.replicaName].agent.Status(ctx)
		if err == nil && st.Diverged != "" {
			return nil
		}
		_, _ = replicaRoot.Exec("STOP SLAVE")
		_, _ = replicaRoot.Exec("RESET SLAVE ALL")
		return fmt.Errorf("%+v %w", st, err)
	})
	old, err := get(t, &corev1.Pod{}, rs.ns, rs.replicaName)
	if err != nil {
		t.Fatal(err)
	}
	setPodReady(t, rs.ns, rs.replicaName, false)
	eventually(t, "the operator restarts the diverged replica's pod", func() error {
		p, err := get(t, &corev1.Pod{}, rs.ns, rs.replicaName)
		if err == nil && p.UID == old.UID && p.DeletionTimestamp.IsZero() {
			return fmt.Errorf("pod %s still there; events: %s", p.Name, eventNotes(t, rs.ns))
		}
		return nil
	})
	if req, err := dbagent.ReadRebuild(replica.DataDir()); err != nil || req == nil || req.Errant == "" {
		t.Fatalf("no rebuild request beside the data directory: %+v %v", req, err)
	}
	eventually(t, "a ReplicaRebuilding event", hasEvent(t, rs.ns, scalestackv1alpha1.EventReplicaRebuilding, rs.replicaName))

	// The pod's next start: the bootstrap copies the primary, then the server starts.
	eventually(t, "the old pod gone", func() error {
		if p, err := get(t, &corev1.Pod{}, rs.ns, rs.replicaName); err == nil && p.UID == old.UID {
			return fmt.Errorf("pod %s still there", p.Name)
		}
		return nil
	})
	replica.Stop()
	run := t.TempDir()
	b := dbagent.Bootstrap{Engine: replication.MariaDB, DataDir: replica.DataDir(), RunDir: run, TmpDir: run, RootPassword: "unused",
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Output: io.Discard,
		Clone: &dbagent.CloneSource{PrimaryURL: func() (string, error) { return rs.pods[rs.primaryName].url, nil },
			Client: agentapi.Client{Token: agentapi.Token(rs.creds.ReplicationPassword)}}}
	if err := b.Run(ctx); err != nil {
		t.Fatal(err)
	}
	replica.Restart()
	createDBPod(t, sp, 0, "replica", rs.replicaName)
	if _, err := rs.app(rs.primaryName).Exec("INSERT INTO social.posts VALUES (100, 'after the rebuild')"); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the rebuilt replica has every row of the primary, and not its own", func() error {
		st, err := rs.pods[rs.replicaName].agent.Status(ctx)
		if err != nil {
			return err
		}
		if !st.Ready || st.Diverged != "" || st.Rebuild != nil {
			return fmt.Errorf("agent: %+v", st)
		}
		var n, errant int
		if err := replica.DB(t).QueryRow("SELECT COUNT(*), COALESCE(SUM(id = 7777), 0) FROM social.posts").Scan(&n, &errant); err != nil {
			return err
		}
		if n != 101 || errant != 0 {
			return fmt.Errorf("%d rows, the errant one %d times", n, errant)
		}
		return nil
	})
	setPodReady(t, rs.ns, rs.replicaName, true)
}
