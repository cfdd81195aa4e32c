// Command images assembles the project's container images without a container engine (see
// internal/images) and writes each as an archive that `ctr images import` and `docker load`
// read, or pushes them to a registry. hack/build-images.sh compiles the binaries and builds the
// Debian root filesystems first; `make images` runs both.
//
//	images -bin DIR -rootfs DIR -out DIR [-only a,b] [-ref name=ref ...]
//	images -bin DIR -rootfs DIR -push -registry REGISTRY [-only a,b]
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/scalestack/scalestack/internal/images"
)

type refFlags map[string]string

func (r refFlags) String() string { return fmt.Sprint(map[string]string(r)) }
func (r refFlags) Set(v string) error {
	k, ref, ok := strings.Cut(v, "=")
	if !ok {
		return fmt.Errorf("want name=ref, got %q", v)
	}
	r[k] = ref
	return nil
}

func main() {
	refs := refFlags{}
	bin := flag.String("bin", "", "directory of the static binaries")
	rootfs := flag.String("rootfs", "", "directory of mariadb.tar and redis.tar")
	out := flag.String("out", "", "directory to write <name>.tar archives into")
	only := flag.String("only", "", "comma-separated image names (default: every image)")
	ca := flag.String("ca-certs", "/etc/ssl/certs/ca-certificates.crt", "CA bundle to put into the images")
	push := flag.Bool("push", false, "push the images to -registry instead of writing archives")
	registry := flag.String("registry", "", "registry (and path) to push to, e.g. registry.example.com/scalestack")
	flag.Var(refs, "ref", "name=reference of an image (repeatable)")
	flag.Parse()
	if err := run(images.Inputs{Bin: *bin, RootFS: *rootfs, CACerts: *ca, Refs: refs}, *only, *out, *push, *registry); err != nil {
		fmt.Fprintln(os.Stderr, "images:", err)
		os.Exit(1)
	}
}

func run(in images.Inputs, only, out string, push bool, registry string) error {
	specs := images.Select(images.Catalog(in), only)
	if len(specs) == 0 {
		return fmt.Errorf("no image is named %q (images: %s)", only, strings.Join(images.Names, ", "))
	}
	if push && registry == "" {
		return fmt.Errorf("-push needs -registry")
	}
	for _, s := range specs {
		if s.Ref == "" {
			return fmt.Errorf("image %s has no reference (-ref %s=...)", s.Name, s.Name)
		}
		start := time.Now()
		img, err := images.Build(s)
		if err != nil {
			return err
		}
		digest, err := img.Digest()
		if err != nil {
			return err
		}
		if push {
			ref, err := name.ParseReference(images.Retag(s.Ref, registry))
			if err != nil {
				return err
			}
			if err := remote.Write(ref, img, remote.WithAuthFromKeychain(authn.DefaultKeychain)); err != nil {
				return fmt.Errorf("pushing %s: %w", ref, err)
			}
			fmt.Printf("%-16s %s@%s pushed (%s)\n", s.Name, ref, digest, time.Since(start).Round(time.Millisecond))
			continue
		}
		tag, err := name.NewTag(s.Ref)
		if err != nil {
			return fmt.Errorf("image %s: %w", s.Name, err)
		}
		path := filepath.Join(out, s.Name+".tar")
		if err := tarball.WriteToFile(path+".tmp", tag, img); err != nil {
			return fmt.Errorf("writing %s: %w", path, err)
		}
		if err := os.Rename(path+".tmp", path); err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(out, s.Name+".ref"), []byte(s.Ref+"@"+digest.String()+"\n"), 0o644); err != nil {
			return err
		}
		fmt.Printf("%-16s %s %s (%s)\n", s.Name, s.Ref, digest, time.Since(start).Round(time.Millisecond))
	}
	return nil
}
