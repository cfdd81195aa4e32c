// Command localstore runs SeaweedFS (`weed server`: master, volume, filer and S3 gateway in one
// process) as the local node's object store, and creates its bucket once the S3 gateway answers:
// `make run` backs the local sample up to it (config/local-sample/objectstore.yaml). It is a real
// S3-compatible server, not a fake; it keeps its data in -data (the pod's volume) and accepts any
// key (no identities configured): a demo store on a private network, not a production one.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func main() {
	weed := flag.String("weed", "/weed", "the SeaweedFS binary")
	data := flag.String("data", "/data", "where the store keeps its data")
	port := flag.Int("port", 8333, "port of the S3 gateway")
	bucket := flag.String("bucket", "backups", "the bucket to create")
	readyAddr := flag.String("ready", ":8334", "address of GET /ready, 200 once the bucket takes writes (the readiness probe)")
	flag.Parse()
	if err := run(*weed, *data, *port, *bucket, *readyAddr); err != nil {
		fmt.Fprintln(os.Stderr, "localstore:", err)
		os.Exit(1)
	}
}

func run(weed, data string, port int, bucket, readyAddr string) error {
	if err := os.MkdirAll(data, 0o700); err != nil {
		return err
	}
	cmd := exec.Command(weed, "server", "-dir="+data, "-ip=127.0.0.1", "-ip.bind=0.0.0.0",
		"-master.volumeSizeLimitMB=64", "-volume.max=16", "-filer",
		"-s3", "-s3.port="+strconv.Itoa(port), "-s3.port.iceberg=0", "-s3.port.lance=0")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting weed: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)

	ready := make(chan error, 1)
	go func() { ready <- createBucket(port, bucket) }()
	for {
		select {
		case err := <-ready:
			if err != nil {
				_ = cmd.Process.Kill()
				return err
			}
			fmt.Printf("localstore: S3 on :%d, bucket %q ready\n", port, bucket)
			mux := http.NewServeMux()
			mux.HandleFunc("GET /ready", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ready\n")) })
			go func() {
				srv := &http.Server{Addr: readyAddr, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
				if err := srv.ListenAndServe(); err != nil {
					fmt.Fprintln(os.Stderr, "localstore: the readiness endpoint:", err)
				}
			}()
		case err := <-exited:
			return fmt.Errorf("weed exited: %w", err)
		case s := <-sig:
			_ = cmd.Process.Signal(s)
			select {
			case err := <-exited:
				return ignoreSignalled(err)
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				return ignoreSignalled(<-exited)
			}
		}
	}
}

// ignoreSignalled: weed stopped by the signal passed on is a clean stop.
func ignoreSignalled(err error) error {
	if ee, ok := errors.AsType[*exec.ExitError](err); ok && !ee.Exited() {
		return nil
	}
	return err
}

// createBucket waits until the gateway serves writes (it answers before a volume server has
// registered), then creates the bucket unless it exists.
func createBucket(port int, bucket string) error {
	endpoint := "127.0.0.1:" + strconv.Itoa(port)
	mc, err := minio.New(endpoint, &minio.Options{Creds: credentials.NewStaticV4("local", "local", ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(3 * time.Minute)
	var last error
	for time.Now().Before(deadline) {
		if resp, err := client.Get("http://" + endpoint + "/"); err == nil {
			_ = resp.Body.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			last = mc.MakeBucket(ctx, bucket, minio.MakeBucketOptions{})
			if last != nil && minio.ToErrorResponse(last).Code == "BucketAlreadyOwnedByYou" || last != nil && minio.ToErrorResponse(last).Code == "BucketAlreadyExists" {
				last = nil
			}
			if last == nil {
				// A write proves the volume server registered.
				_, last = mc.PutObject(ctx, bucket, ".localstore", http.NoBody, 0, minio.PutObjectOptions{})
			}
			cancel()
			if last == nil {
				return nil
			}
		} else {
			last = err
		}
		time.Sleep(time.Second)
	}
	return fmt.Errorf("the S3 gateway did not serve writes within 3 minutes: %w", last)
}
