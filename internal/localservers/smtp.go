package localservers

import (
	"fmt"
	"io"
	"net"
	"net/mail"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Mail is one message an SMTP server received.
type Mail struct {
	From      string
	To        []string
	MessageID string
	Subject   string
	Body      string
}

// SMTP is an SMTP server (emersion/go-smtp) on a free loopback port that keeps what it receives.
// Fail makes it refuse messages with a temporary error, as a relay under trouble does.
type SMTP struct {
	Port int
	srv  *smtp.Server
	mu   sync.Mutex
	mail []Mail
	fail bool
}

// StartSMTP starts the server and stops it when the test ends.
func StartSMTP(t Lifetime) *SMTP {
	t.Helper()
	s := &SMTP{}
	srv := smtp.NewServer(smtpBackend{s})
	srv.Domain = "localhost"
	srv.AllowInsecureAuth = true
	srv.ReadTimeout, srv.WriteTimeout = 10*time.Second, 10*time.Second
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Port = l.Addr().(*net.TCPAddr).Port
	s.srv = srv
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return s
}

// Addr is host:port.
func (s *SMTP) Addr() string { return fmt.Sprintf("127.0.0.1:%d", s.Port) }

// Mails returns what was received so far.
func (s *SMTP) Mails() []Mail {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Mail(nil), s.mail...)
}

// SetFailing makes the server refuse (or accept again) messages.
func (s *SMTP) SetFailing(f bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = f
}

type smtpBackend struct{ s *SMTP }

func (b smtpBackend) NewSession(*smtp.Conn) (smtp.Session, error) { return &smtpSession{s: b.s}, nil }

type smtpSession struct {
	s    *SMTP
	from string
	to   []string
}

func (x *smtpSession) Mail(from string, _ *smtp.MailOptions) error { x.from = from; return nil }
func (x *smtpSession) Rcpt(to string, _ *smtp.RcptOptions) error   { x.to = append(x.to, to); return nil }
func (x *smtpSession) Reset()                                      { x.from, x.to = "", nil }
func (x *smtpSession) Logout() error                               { return nil }

func (x *smtpSession) Data(r io.Reader) error {
	x.s.mu.Lock()
	failing := x.s.fail
	x.s.mu.Unlock()
	if failing {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	}
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return err
	}
	body, _ := io.ReadAll(msg.Body)
	x.s.mu.Lock()
	defer x.s.mu.Unlock()
	x.s.mail = append(x.s.mail, Mail{From: x.from, To: x.to, MessageID: msg.Header.Get("Message-ID"),
		Subject: msg.Header.Get("Subject"), Body: strings.TrimSpace(string(body))})
	return nil
}
