// Package backup holds what the shard agents need to back a shard up to S3-compatible object
// storage and to restore it: the object store client (minio-go) and the classification of its
// failures into the reasons the BackupReady condition reports.
package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Reasons a store check fails with; they are the BackupReady condition's reasons.
const (
	ReasonObjectStoreUnreachable = "ObjectStoreUnreachable"
	ReasonCredentialsRejected    = "CredentialsRejected"
	ReasonBucketMissing          = "BucketMissing"
	ReasonBackupFailed           = "BackupFailed"
)

// StoreError is a failed store operation with the reason it maps to.
type StoreError struct {
	Reason string
	Op     string
	Err    error
}

func (e *StoreError) Error() string {
	return fmt.Sprintf("object store %s: %s: %v", e.Op, e.Reason, e.Err)
}

func (e *StoreError) Unwrap() error { return e.Err }

// ReasonOf returns the reason of err when it is a StoreError, else ReasonBackupFailed.
func ReasonOf(err error) string {
	if se, ok := errors.AsType[*StoreError](err); ok {
		return se.Reason
	}
	return ReasonBackupFailed
}

// StoreConfig says where backups go.
type StoreConfig struct {
	// Endpoint is host[:port] of the S3 API.
	Endpoint string
	Bucket   string
	// Prefix is the path under which this platform's objects live ("" or "a/b", no leading
	// slash); a trailing slash is added.
	Prefix    string
	Region    string
	AccessKey string
	SecretKey string
	// Insecure uses plain HTTP (a local store); otherwise HTTPS.
	Insecure bool
	// Transport overrides the HTTP transport (custom CAs, timeouts).
	Transport http.RoundTripper
}

// Store is a bucket and prefix in an object store.
type Store struct {
	cfg    StoreConfig
	client *minio.Client
}

// Open returns a Store; it does not contact the server (Check does).
func Open(cfg StoreConfig) (*Store, error) {
	if cfg.Endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("object store: endpoint and bucket are required")
	}
	cfg.Prefix = strings.Trim(cfg.Prefix, "/")
	if cfg.Prefix != "" {
		cfg.Prefix += "/"
	}
	tr := cfg.Transport
	if tr == nil {
		tr = &http.Transport{
			Proxy:                 nil, // the store is reached directly, never through a proxy from the environment
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			TLSHandshakeTimeout:   10 * time.Second,
			ResponseHeaderTimeout: 30 * time.Second,
			MaxIdleConnsPerHost:   4,
			IdleConnTimeout:       90 * time.Second,
		}
	}
	client, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:     credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:    !cfg.Insecure,
		Region:    cfg.Region,
		Transport: tr,
		// Path-style addressing works with every S3-compatible server; virtual-host style needs
		// DNS for each bucket.
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("object store: %w", err)
	}
	return &Store{cfg: cfg, client: client}, nil
}

// Key returns the object key of name under the store's prefix.
func (s *Store) Key(name string) string { return s.cfg.Prefix + strings.TrimPrefix(name, "/") }

// Check proves the store is usable: the endpoint answers, the credentials are accepted, the bucket
// exists, and an object can be written, read back and removed under the prefix.
func (s *Store) Check(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.classify("bucket lookup", err)
	}
	if !ok {
		return &StoreError{Reason: ReasonBucketMissing, Op: "bucket lookup", Err: fmt.Errorf("bucket %q does not exist", s.cfg.Bucket)}
	}
	key := s.Key(".scalestack-check")
	body := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	if _, err := s.client.PutObject(ctx, s.cfg.Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{}); err != nil {
		return s.classify("write", err)
	}
	if err := s.client.RemoveObject(ctx, s.cfg.Bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return s.classify("delete", err)
	}
	return nil
}

// classify maps a client error onto a reason: network failures are ObjectStoreUnreachable, the
// S3 error codes for unknown keys or bad signatures CredentialsRejected, NoSuchBucket
// BucketMissing, anything else BackupFailed.
func (s *Store) classify(op string, err error) error {
	reason := ReasonBackupFailed
	resp := minio.ToErrorResponse(err)
	switch {
	case resp.Code == "NoSuchBucket":
		reason = ReasonBucketMissing
	case resp.Code == "InvalidAccessKeyId" || resp.Code == "SignatureDoesNotMatch" ||
		resp.Code == "AccessDenied" || resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusUnauthorized:
		reason = ReasonCredentialsRejected
	case isNetwork(err):
		reason = ReasonObjectStoreUnreachable
	}
	return &StoreError{Reason: reason, Op: op, Err: err}
}

func isNetwork(err error) bool {
	if _, ok := errors.AsType[net.Error](err); ok {
		return true
	}
	if _, ok := errors.AsType[*net.OpError](err); ok {
		return true
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// CreateBucket makes the store's bucket when it does not exist: for the local stores of make run
// and the tests (a platform's bucket is its owner's to create).
func (s *Store) CreateBucket(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.cfg.Bucket)
	if err != nil {
		return s.classify("bucket lookup", err)
	}
	if ok {
		return nil
	}
	if err := s.client.MakeBucket(ctx, s.cfg.Bucket, minio.MakeBucketOptions{Region: s.cfg.Region}); err != nil {
		return s.classify("creating the bucket", err)
	}
	return nil
}
