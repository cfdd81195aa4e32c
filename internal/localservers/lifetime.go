package localservers

import (
	"fmt"
	"os"
	"sync"
)

// Lifetime is how long the servers live and how a failure to start one is reported: *testing.T
// and *testing.B satisfy it, and so does a program's Session.
type Lifetime interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Session is the Lifetime of a program: Fatal prints the message, stops everything started so far
// and exits with status 1; Close stops everything, newest first, and removes the temporary
// directories.
type Session struct {
	mu       sync.Mutex
	cleanups []func()
	// Name prefixes Fatal's message (the program's name).
	Name string
}

// NewSession returns an empty session for the program name.
func NewSession(name string) *Session { return &Session{Name: name} }

// Helper implements Lifetime.
func (s *Session) Helper() {}

// Fatal implements Lifetime.
func (s *Session) Fatal(args ...any) { s.exit(fmt.Sprint(args...)) }

// Fatalf implements Lifetime.
func (s *Session) Fatalf(format string, args ...any) { s.exit(fmt.Sprintf(format, args...)) }

func (s *Session) exit(msg string) {
	fmt.Fprintf(os.Stderr, "%s: %s\n", s.Name, msg)
	s.Close()
	os.Exit(1)
}

// Cleanup implements Lifetime.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir implements Lifetime.
func (s *Session) TempDir() string {
	d, err := os.MkdirTemp("", "scalestack-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(d) })
	return d
}

// Close runs the cleanups, newest first.
func (s *Session) Close() {
	s.mu.Lock()
	fs := s.cleanups
	s.cleanups = nil
	s.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
