package main

import (
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scalestack/scalestack/internal/images"
)

// The operator image written as an archive and pushed to a registry (go-containerregistry's
// registry server on a loopback port) is one image: the archive holds its config (the image ID),
// the registry its manifest under the digest that <name>.ref names, where Retag says.
func TestArchiveAndPushAgree(t *testing.T) {
	dir := t.TempDir()
	for _, f := range []string{"manager", "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	in := images.Inputs{Bin: dir, CACerts: filepath.Join(dir, "ca.crt"), Refs: map[string]string{"operator": "ghcr.io/scalestack/operator:v0.1.0"}}
	out := t.TempDir()
	if err := run(in, "operator", out, false, ""); err != nil {
		t.Fatal(err)
	}
	ref, err := os.ReadFile(filepath.Join(out, "operator.ref"))
	if err != nil {
		t.Fatal(err)
	}
	tag, _ := name.NewTag("ghcr.io/scalestack/operator:v0.1.0")
	img, err := tarball.ImageFromPath(filepath.Join(out, "operator.tar"), &tag)
	if err != nil {
		t.Fatal(err)
	}
	built, err := images.Build(images.Catalog(in)[0])
	if err != nil {
		t.Fatal(err)
	}
	wantID, _ := built.ConfigName()
	if id, _ := img.ConfigName(); id != wantID {
		t.Fatalf("the archive holds image %s, the build is %s", id, wantID)
	}
	_, digest, _ := strings.Cut(strings.TrimSpace(string(ref)), "@")

	srv := httptest.NewServer(registry.New())
	defer srv.Close()
	u, _ := url.Parse(srv.URL)
	if err := run(in, "operator", "", true, u.Host+"/team"); err != nil {
		t.Fatal(err)
	}
	pushed, err := remote.Head(mustRef(t, u.Host+"/team/operator:v0.1.0"))
	if err != nil {
		t.Fatal(err)
	}
	if pushed.Digest.String() != digest {
		t.Fatalf("pushed %s, operator.ref names %s", pushed.Digest, digest)
	}
	if err := run(in, "nothing", out, false, ""); err == nil {
		t.Fatal("an unknown image name was accepted")
	}
	if err := run(in, "operator", "", true, ""); err == nil {
		t.Fatal("-push without -registry was accepted")
	}
}

func mustRef(t *testing.T, s string) name.Reference {
	t.Helper()
	r, err := name.ParseReference(s, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
