package auth

import (
	"strings"
	"testing"
	"time"

	"github.com/scalestack/scalestack/pkg/shard"
)

func TestTokens(t *testing.T) {
	key := []byte(strings.Repeat("s", 32))
	tok, err := NewTokens(key, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	id := shard.NewID(1000, 7, 1)
	s, err := tok.Issue(id)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := tok.Verify(s); err != nil || got != id {
		t.Fatalf("round trip: %v %v", got, err)
	}
	other, _ := NewTokens([]byte(strings.Repeat("o", 32)), time.Hour)
	forged, _ := other.Issue(shard.NewID(2000, 8, 2))
	expired := &Tokens{key: key, ttl: time.Minute, now: func() time.Time { return time.Now().Add(-time.Hour) }}
	old, _ := expired.Issue(id)
	parts := strings.Split(s, ".")
	for name, bad := range map[string]string{
		"other key": forged, "expired": old, "empty": "", "garbage": "a.b.c",
		"alg none":     "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0.eyJpc3MiOiJzY2FsZXN0YWNrIiwic3ViIjoiMSJ9.",
		"payload swap": parts[0] + "." + strings.Split(forged, ".")[1] + "." + parts[2],
		"too long":     strings.Repeat("a", 2000),
	} {
		if _, err := tok.Verify(bad); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := NewTokens([]byte("short"), 0); err == nil {
		t.Error("a short key was accepted")
	}
}

func TestPasswords(t *testing.T) {
	p := HashParams{Time: 1, Memory: 1024, Threads: 1}
	h, err := HashPassword("correct horse", p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=1024,t=1,p=1$") || strings.Contains(h, "correct horse") {
		t.Fatalf("hash %q", h)
	}
	h2, _ := HashPassword("correct horse", p)
	if h == h2 {
		t.Fatal("two hashes of one password are equal: no salt")
	}
	if ok, err := CheckPassword("correct horse", h); !ok || err != nil {
		t.Fatalf("right password refused: %v", err)
	}
	if ok, _ := CheckPassword("correct horsf", h); ok {
		t.Fatal("wrong password accepted")
	}
	for _, bad := range []string{"", "$argon2i$v=19$m=1,t=1,p=1$AA$AA", "$argon2id$v=19$garbage$AA$AA", "plain"} {
		if ok, err := CheckPassword("x", bad); ok || err == nil {
			t.Errorf("malformed hash %q: ok=%v err=%v", bad, ok, err)
		}
	}
}
