// Package images assembles the project's container images without a container engine: OCI images
// made of one layer (static Go binaries with CA certificates and a passwd entry for the non-root
// user, or a root filesystem archive built from Debian packages) and a config, through
// go-containerregistry. The same inputs always give the same digest: file times, owners and order
// in the layer are fixed and the config carries no build time.
package images

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"os"
	"path"
	"sort"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Epoch is the time stamped on every file and on the config: a fixed time, so builds reproduce.
var Epoch = time.Unix(0, 0).UTC()

// File is one file of an image built from files.
type File struct {
	// Path inside the image, absolute.
	Path string
	// Source on the build machine; ignored when Data is set.
	Source string
	// Data is the file's content when it does not come from a file.
	Data []byte
	// Link makes the file a symbolic link to this target.
	Link string
	Mode int64
}

// Spec describes one image.
type Spec struct {
	// Name is the short name used on the command line ("apps", "mariadb").
	Name string
	// Ref is the reference the image is tagged with.
	Ref string
	// Files make up the layer of a files image.
	Files []File
	// RootFS is an uncompressed tar of a whole root filesystem; when set, it is the only layer.
	RootFS string
	// User is "uid:gid"; a passwd and group entry is written for it in files images.
	User       string
	Entrypoint []string
	Cmd        []string
	Env        []string
	WorkingDir string
}

// NonRoot is the uid and gid the project's own images run as (distroless' nonroot).
const NonRoot = "65532:65532"

// Build assembles the image a spec describes.
func Build(s Spec) (v1.Image, error) {
	var layer v1.Layer
	var err error
	if s.RootFS != "" {
		layer, err = tarball.LayerFromFile(s.RootFS, tarball.WithMediaType(types.OCILayer))
	} else {
		var data []byte
		data, err = filesTar(s)
		if err == nil {
			layer, err = tarball.LayerFromOpener(func() (io.ReadCloser, error) {
				return io.NopCloser(bytes.NewReader(data)), nil
			}, tarball.WithMediaType(types.OCILayer))
		}
	}
	if err != nil {
		return nil, fmt.Errorf("image %s: layer: %w", s.Name, err)
	}
	img := mutate.MediaType(empty.Image, types.OCIManifestSchema1)
	img = mutate.ConfigMediaType(img, types.OCIConfigJSON)
	img, err = mutate.Append(img, mutate.Addendum{Layer: layer, History: v1.History{
		Created: v1.Time{Time: Epoch}, CreatedBy: "scalestack images: " + s.Name}})
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", s.Name, err)
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: Epoch}
	env := s.Env
	if len(env) == 0 {
		env = []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}
	}
	cf.Config = v1.Config{User: s.User, Entrypoint: s.Entrypoint, Cmd: s.Cmd, Env: env, WorkingDir: s.WorkingDir,
		Labels: map[string]string{"org.opencontainers.image.source": "https://github.com/scalestack/scalestack"}}
	return mutate.ConfigFile(img, cf)
}

// filesTar writes the layer of a files image: the files, every parent directory, /tmp, and for a
// non-root user its passwd and group entries, all owned by root and stamped with Epoch.
func filesTar(s Spec) ([]byte, error) {
	entries := map[string]*tar.Header{}
	data := map[string][]byte{}
	addDir := func(p string, mode int64) {
		for d := p; d != "/" && d != "."; d = path.Dir(d) {
			name := strings.TrimPrefix(d, "/") + "/"
			if _, ok := entries[name]; !ok {
				entries[name] = &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755}
			}
		}
		if mode != 0 {
			entries[strings.TrimPrefix(p, "/")+"/"].Mode = mode
		}
	}
	addFile := func(p string, content []byte, mode int64) {
		addDir(path.Dir(p), 0)
		name := strings.TrimPrefix(p, "/")
		entries[name] = &tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: mode, Size: int64(len(content))}
		data[name] = content
	}
	addDir("/tmp", 0o1777)
	if s.User != "" {
		uid, gid, _ := strings.Cut(s.User, ":")
		if gid == "" {
			gid = uid
		}
		addFile("/etc/passwd", fmt.Appendf(nil, "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:%s:%s:nonroot:/home/nonroot:/sbin/nologin\n", uid, gid), 0o644)
		addFile("/etc/group", fmt.Appendf(nil, "root:x:0:\nnonroot:x:%s:\n", gid), 0o644)
		addDir("/home/nonroot", 0o755)
	}
	for _, f := range s.Files {
		if !path.IsAbs(f.Path) {
			return nil, fmt.Errorf("image %s: path %q is not absolute", s.Name, f.Path)
		}
		if f.Link != "" {
			addDir(path.Dir(f.Path), 0)
			name := strings.TrimPrefix(path.Clean(f.Path), "/")
			entries[name] = &tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: f.Link, Mode: 0o777}
			continue
		}
		content := f.Data
		if content == nil {
			b, err := os.ReadFile(f.Source)
			if err != nil {
				return nil, fmt.Errorf("image %s: %w", s.Name, err)
			}
			content = b
		}
		mode := f.Mode
		if mode == 0 {
			mode = 0o644
		}
		addFile(path.Clean(f.Path), content, mode)
	}
	names := make([]string, 0, len(entries))
	for n := range entries {
		names = append(names, n)
	}
	sort.Strings(names)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range names {
		h := entries[n]
		h.ModTime, h.Uname, h.Gname, h.Format = Epoch, "root", "root", tar.FormatPAX
		if err := tw.WriteHeader(h); err != nil {
			return nil, err
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(data[n]); err != nil {
				return nil, err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}
