package images

import (
	"archive/tar"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func testSpec(t *testing.T, content string) Spec {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "tool")
	if err := os.WriteFile(bin, []byte(content), 0o755); err != nil {
		t.Fatal(err)
	}
	ca := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(ca, []byte("not a real certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// Touch the files to now: the image must not carry file times of the build machine.
	return Spec{Name: "t", Ref: "example.com/t:v1", User: NonRoot, Entrypoint: []string{"/usr/local/bin/tool"},
		Files: []File{
			{Path: "/usr/local/bin/tool", Source: bin, Mode: 0o755},
			{Path: "/etc/ssl/certs/ca-certificates.crt", Source: ca},
			{Path: "/bin/sh", Link: "tool"},
		}}
}

func TestBuildIsReproducible(t *testing.T) {
	a, err := Build(testSpec(t, "binary v1"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Build(testSpec(t, "binary v1"))
	if err != nil {
		t.Fatal(err)
	}
	da, _ := a.Digest()
	db, _ := b.Digest()
	if da != db {
		t.Fatalf("same inputs, different digests: %s and %s", da, db)
	}
	c, err := Build(testSpec(t, "binary v2"))
	if err != nil {
		t.Fatal(err)
	}
	if dc, _ := c.Digest(); dc == da {
		t.Fatalf("a changed binary kept digest %s", dc)
	}
}

func TestFilesImageLayout(t *testing.T) {
	img, err := Build(testSpec(t, "x"))
	if err != nil {
		t.Fatal(err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	if cf.Config.User != NonRoot || cf.OS != "linux" || cf.Architecture != "amd64" || !cf.Created.Equal(Epoch) {
		t.Fatalf("config: user %q os %q arch %q created %v", cf.Config.User, cf.OS, cf.Architecture, cf.Created)
	}
	layers, err := img.Layers()
	if err != nil || len(layers) != 1 {
		t.Fatalf("layers: %d, %v", len(layers), err)
	}
	rc, err := layers[0].Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = rc.Close() }()
	got := map[string]*tar.Header{}
	var order []string
	tr := tar.NewReader(rc)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !h.ModTime.Equal(Epoch) || h.Uid != 0 || h.Gid != 0 {
			t.Errorf("%s: time %v owner %d:%d, want epoch and root", h.Name, h.ModTime, h.Uid, h.Gid)
		}
		got[h.Name] = h
		order = append(order, h.Name)
	}
	for i := 1; i < len(order); i++ {
		if order[i-1] >= order[i] {
			t.Errorf("entries not sorted: %q before %q", order[i-1], order[i])
		}
	}
	for name, mode := range map[string]int64{"usr/local/bin/tool": 0o755, "etc/ssl/certs/ca-certificates.crt": 0o644,
		"etc/passwd": 0o644, "etc/group": 0o644, "tmp/": 0o1777, "usr/local/bin/": 0o755} {
		h, ok := got[name]
		if !ok {
			t.Errorf("%s missing", name)
			continue
		}
		if h.Mode != mode {
			t.Errorf("%s: mode %o, want %o", name, h.Mode, mode)
		}
	}
	if h := got["bin/sh"]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "tool" {
		t.Errorf("bin/sh is not a link to tool: %+v", h)
	}
}

func TestRetag(t *testing.T) {
	for in, want := range map[[2]string]string{
		{"ghcr.io/scalestack/apps:v0.1.0", "registry.example.com/team"}:  "registry.example.com/team/apps:v0.1.0",
		{"ghcr.io/scalestack/apps:v0.1.0", "registry.example.com/team/"}: "registry.example.com/team/apps:v0.1.0",
		{"quay.io/prometheus/mysqld-exporter:v0.16.0", ""}:               "quay.io/prometheus/mysqld-exporter:v0.16.0",
	} {
		if got := Retag(in[0], in[1]); got != want {
			t.Errorf("Retag(%q, %q) = %q, want %q", in[0], in[1], got, want)
		}
	}
}

func TestCatalogNamesEveryImage(t *testing.T) {
	specs := Catalog(Inputs{Bin: "/b", RootFS: "/r", CACerts: "/ca"})
	if len(specs) != len(Names) {
		t.Fatalf("catalog has %d images, Names %d", len(specs), len(Names))
	}
	for i, s := range specs {
		if s.Name != Names[i] {
			t.Errorf("image %d is %s, Names says %s", i, s.Name, Names[i])
		}
	}
	if got := Select(specs, "apps, pause"); len(got) != 2 || got[0].Name != "apps" || got[1].Name != "pause" {
		t.Errorf("Select: %v", got)
	}
}
