package images

import (
	"path/filepath"
	"strings"

	"github.com/scalestack/scalestack/pkg/platform"
)

// AppBinaries are the binaries of the apps image, in platform.BinDir, where the operator's render
// runs them from (platform.Binary).
var AppBinaries = []string{"gateway", "user", "post", "feed", "worker", "archiver", "dbagent", "loadgen"}

// Inputs are where the catalog's files come from.
type Inputs struct {
	// Bin holds the static binaries: manager, the apps' binaries, pause, mysqld_exporter,
	// redis_exporter, busybox, localstore and weed.
	Bin string
	// RootFS holds mariadb.tar and redis.tar (root filesystems built from Debian's packages).
	RootFS string
	// CACerts is the CA bundle copied into the files images.
	CACerts string
	// Refs maps an image name to its reference.
	Refs map[string]string
}

// Names lists the catalog's images in build order.
var Names = []string{"operator", "apps", "mysqld-exporter", "redis-exporter", "pause", "busybox", "kfake", "mailsink", "objectstore", "mariadb", "redis"}

// Catalog returns the spec of every image the project builds: the operator and the apps (the
// product), the exporters the operator renders (built from their Go modules at the versions the
// render pins), and for the local node only a pause image, a busybox for the volume provisioner's
// helper pods, kfake (the Kafka stand-in: no broker can be installed here), an SMTP sink that
// prints what it receives, SeaweedFS as the object store backups go to, and MariaDB and Redis from
// Debian's packages.
func Catalog(in Inputs) []Spec {
	bin := func(name string) string { return filepath.Join(in.Bin, name) }
	ca := File{Path: "/etc/ssl/certs/ca-certificates.crt", Source: in.CACerts, Mode: 0o644}
	apps := []File{ca}
	for _, b := range AppBinaries {
		apps = append(apps, File{Path: platform.Binary(b), Source: bin(b), Mode: 0o755})
	}
	busybox := []File{{Path: "/bin/busybox", Source: bin("busybox"), Mode: 0o755}}
	// The applets the volume provisioner's helper scripts use; busybox picks one by argv[0].
	for _, a := range []string{"sh", "mkdir", "rm", "rmdir", "chmod", "ls", "cat", "sleep", "du", "test"} {
		busybox = append(busybox, File{Path: "/bin/" + a, Link: "busybox"})
	}
	specs := []Spec{
		{Name: "operator", Files: []File{ca, {Path: "/manager", Source: bin("manager"), Mode: 0o755}},
			User: NonRoot, Entrypoint: []string{"/manager"}},
		{Name: "apps", Files: apps, User: NonRoot, WorkingDir: "/"},
		{Name: "mysqld-exporter", Files: []File{ca, {Path: "/bin/mysqld_exporter", Source: bin("mysqld_exporter"), Mode: 0o755}},
			User: "65534:65534", Entrypoint: []string{"/bin/mysqld_exporter"}},
		{Name: "redis-exporter", Files: []File{ca, {Path: "/redis_exporter", Source: bin("redis_exporter"), Mode: 0o755}},
			User: "59000:59000", Entrypoint: []string{"/redis_exporter"}},
		{Name: "pause", Files: []File{{Path: "/pause", Source: bin("pause"), Mode: 0o755}},
			User: NonRoot, Entrypoint: []string{"/pause"}},
		{Name: "busybox", Files: busybox, Cmd: []string{"/bin/sh"}},
		{Name: "kfake", Files: []File{{Path: "/localkafka", Source: bin("localkafka"), Mode: 0o755}},
			User: NonRoot, Entrypoint: []string{"/localkafka"}},
		{Name: "mailsink", Files: []File{{Path: "/mailsink", Source: bin("mailsink"), Mode: 0o755}},
			User: NonRoot, Entrypoint: []string{"/mailsink"}},
		{Name: "objectstore", Files: []File{{Path: "/localstore", Source: bin("localstore"), Mode: 0o755}, {Path: "/weed", Source: bin("weed"), Mode: 0o755}},
			User: NonRoot, Entrypoint: []string{"/localstore"}},
		{Name: "mariadb", RootFS: filepath.Join(in.RootFS, "mariadb.tar"), Cmd: []string{"mariadbd"}},
		{Name: "redis", RootFS: filepath.Join(in.RootFS, "redis.tar"), Cmd: []string{"redis-server"}},
	}
	for i := range specs {
		specs[i].Ref = in.Refs[specs[i].Name]
	}
	return specs
}

// Select returns the specs named in only (comma-separated), or all of them when only is empty.
func Select(specs []Spec, only string) []Spec {
	if only == "" {
		return specs
	}
	want := map[string]bool{}
	for n := range strings.SplitSeq(only, ",") {
		want[strings.TrimSpace(n)] = true
	}
	var out []Spec
	for _, s := range specs {
		if want[s.Name] {
			out = append(out, s)
		}
	}
	return out
}

// Retag moves ref into registry, keeping its last path element and tag:
// Retag("ghcr.io/scalestack/apps:v0.1.0", "registry.example.com/team") is
// "registry.example.com/team/apps:v0.1.0".
func Retag(ref, registry string) string {
	if registry == "" {
		return ref
	}
	last := ref[strings.LastIndexByte(ref, '/')+1:]
	return strings.TrimSuffix(registry, "/") + "/" + last
}
