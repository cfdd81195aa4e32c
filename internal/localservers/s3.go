package localservers

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// S3 is a real S3-compatible object store: SeaweedFS's `weed server` (master, volume, filer and
// S3 gateway in one process) on free loopback ports, in a temporary directory. It is the object
// store that backups go to in tests and local runs; hack/build-seaweedfs.sh builds the binary.
type S3 struct {
	// Endpoint is host:port of the S3 gateway (plain HTTP).
	Endpoint string
	// AccessKey and SecretKey are the one identity the server accepts (Admin on every bucket).
	AccessKey, SecretKey string
	cmd                  *exec.Cmd
	done                 chan struct{}
	dir                  string
	masterPort           string
	ip                   string
}

// WeedBinary finds the weed binary: $SCALESTACK_WEED, else the build cache of
// hack/build-seaweedfs.sh.
func WeedBinary(t Lifetime) string {
	t.Helper()
	if p := os.Getenv("SCALESTACK_WEED"); p != "" {
		return p
	}
	home, _ := os.UserHomeDir()
	cache := os.Getenv("SCALESTACK_CACHE")
	if cache == "" {
		cache = filepath.Join(home, ".cache", "scalestack")
	}
	matches, _ := filepath.Glob(filepath.Join(cache, "seaweedfs", "*", "weed"))
	for i := len(matches) - 1; i >= 0; i-- {
		if st, err := os.Stat(matches[i]); err == nil && st.Mode()&0o111 != 0 {
			return matches[i]
		}
	}
	t.Fatal("the SeaweedFS binary (weed) is not built: run hack/build-seaweedfs.sh (make test does) or set SCALESTACK_WEED")
	return ""
}

// StartS3 starts SeaweedFS with one identity whose keys it generates, and waits until its S3
// gateway answers. The server and its data go away when the Lifetime ends. A server that fails
// to come up is retried once from scratch, on new ports (seen once on a loaded machine: an
// early exit of weed).
func StartS3(t Lifetime) *S3 { t.Helper(); return StartS3On(t, "127.0.0.1") }

// StartS3On is StartS3 listening on ip, an address of this machine (the real node's bridge
// address, which pods reach).
func StartS3On(t Lifetime, ip string) *S3 {
	t.Helper()
	bin := WeedBinary(t)
	s, err := startS3(t, bin, ip)
	if err != nil {
		s, err = startS3(t, bin, ip)
	}
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func startS3(t Lifetime, bin, ip string) (*S3, error) {
	dir := t.TempDir()
	s := &S3{AccessKey: "scalestack-test", SecretKey: "secret-" + strconv.FormatInt(time.Now().UnixNano(), 36), dir: dir}
	identities := map[string]any{"identities": []any{map[string]any{
		"name":        "scalestack",
		"credentials": []any{map[string]string{"accessKey": s.AccessKey, "secretKey": s.SecretKey}},
		"actions":     []string{"Admin", "Read", "Write", "List", "Tagging"},
	}}}
	cfg, _ := json.Marshal(identities)
	cfgPath := filepath.Join(dir, "s3.json")
	if err := os.WriteFile(cfgPath, cfg, 0o600); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o700); err != nil {
		return nil, err
	}
	port := func() string { return strconv.Itoa(FreePort(t)) }
	s3Port := port()
	s.Endpoint = net.JoinHostPort(ip, s3Port)
	s.masterPort = port()
	s.ip = ip
	s.cmd = exec.Command(bin, "server", "-dir="+data, "-ip="+ip, "-ip.bind="+ip,
		"-master.port="+s.masterPort, "-master.port.grpc="+port(), "-master.volumeSizeLimitMB=64",
		"-volume.port="+port(), "-volume.port.grpc="+port(), "-volume.max=16",
		"-filer", "-filer.port="+port(), "-filer.port.grpc="+port(),
		"-s3", "-s3.port="+s3Port, "-s3.port.grpc="+port(), "-s3.config="+cfgPath,
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-metricsPort="+port())
	logFile, err := os.Create(filepath.Join(dir, "weed.log"))
	if err != nil {
		return nil, err
	}
	s.cmd.Stdout, s.cmd.Stderr = logFile, logFile
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	if err := s.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting weed: %w", err)
	}
	s.done = make(chan struct{})
	go func() { _ = s.cmd.Wait(); _ = logFile.Close(); close(s.done) }()
	t.Cleanup(s.Stop)
	deadline := time.Now().Add(90 * time.Second)
	client := &http.Client{Timeout: 2 * time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return nil, fmt.Errorf("weed exited early (%v):\n%s", s.cmd.ProcessState, s.log())
		default:
		}
		// An unsigned request gets 403 from a configured gateway once it serves: that is "up".
		if resp, err := client.Get("http://" + s.Endpoint + "/"); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusOK {
				if s.volumesReady(client) {
					return s, nil
				}
			}
		}
		time.Sleep(200 * time.Millisecond)
	}
	err = fmt.Errorf("SeaweedFS S3 on %s did not answer within 90s:\n%s", s.Endpoint, s.log())
	s.Stop()
	return nil, err
}

// volumesReady: the gateway answers before a volume server has registered with the master; a
// write then fails, so wait until the master reports free volume slots.
func (s *S3) volumesReady(client *http.Client) bool {
	resp, err := client.Get("http://" + net.JoinHostPort(s.ip, s.masterPort) + "/dir/status")
	if err != nil {
		return false
	}
	defer func() { _ = resp.Body.Close() }()
	var st struct {
		Topology struct {
			Max int `json:"Max"`
		} `json:"Topology"`
	}
	if json.NewDecoder(resp.Body).Decode(&st) != nil {
		return false
	}
	return st.Topology.Max > 0
}

func (s *S3) log() string {
	b, _ := os.ReadFile(filepath.Join(s.dir, "weed.log"))
	return tail(string(b), 3000)
}

// Stop stops the server: SIGTERM, then SIGKILL to its own process group after 15 s (weed has
// been seen still running 10 s after SIGTERM).
func (s *S3) Stop() {
	if s.cmd == nil || s.cmd.Process == nil {
		return
	}
	pid := s.cmd.Process.Pid
	_ = syscall.Kill(-pid, syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.done
	}
	s.cmd = nil
}

// Unreachable returns a host:port on loopback where nothing listens.
func Unreachable(t Lifetime) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
