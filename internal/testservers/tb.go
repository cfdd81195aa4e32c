package testservers

import (
	"fmt"
	"os"
	"sync"
)

// TB is the part of testing.TB the starters use, so that programs (make run-apps, make
// bench-apps) can start the same servers through a Session.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
	TempDir() string
}

// Session is a TB for programs: Fatal panics with the message, Close runs the cleanups in
// reverse order and removes the temporary directories.
type Session struct {
	mu       sync.Mutex
	cleanups []func()
}

// NewSession returns an empty session.
func NewSession() *Session { return &Session{} }

// Helper implements TB.
func (s *Session) Helper() {}

// Fatal implements TB.
func (s *Session) Fatal(args ...any) { panic(fmt.Sprint(args...)) }

// Fatalf implements TB.
func (s *Session) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }

// Cleanup implements TB.
func (s *Session) Cleanup(f func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cleanups = append(s.cleanups, f)
}

// TempDir implements TB.
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
