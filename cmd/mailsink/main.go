// Command mailsink is the local node's SMTP relay: it accepts every message (emersion/go-smtp) and
// prints one JSON line per message (from, to, subject, Message-ID) on standard output, so that the
// welcome e-mails the worker sends can be read with `kubectl logs`. No mail leaves this machine.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/mail"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/emersion/go-smtp"
)

// Received is the line printed for each message.
type Received struct {
	Time      time.Time `json:"time"`
	From      string    `json:"from"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Bytes     int       `json:"bytes"`
}

func main() {
	addr := flag.String("addr", ":2525", "address to listen on")
	flag.Parse()
	srv := smtp.NewServer(backend{out: json.NewEncoder(os.Stdout)})
	srv.Addr = *addr
	srv.Domain = "mailsink.local"
	srv.ReadTimeout, srv.WriteTimeout = 30*time.Second, 30*time.Second
	srv.MaxMessageBytes = 1 << 20
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		<-sig
		_ = srv.Close()
	}()
	fmt.Fprintln(os.Stderr, "mailsink listening on", *addr)
	if err := srv.ListenAndServe(); err != nil && !errors.Is(err, smtp.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, "mailsink:", err)
		os.Exit(1)
	}
}

type backend struct{ out *json.Encoder }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{out: b.out}, nil }

type session struct {
	out  *json.Encoder
	from string
	to   []string
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error { s.from = from; return nil }
func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error   { s.to = append(s.to, to); return nil }
func (s *session) Reset()                                      { s.from, s.to = "", nil }
func (s *session) Logout() error                               { return nil }

func (s *session) Data(r io.Reader) error {
	msg, err := mail.ReadMessage(r)
	if err != nil {
		return &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 6, 0}, Message: "not a message: " + err.Error()}
	}
	body, _ := io.ReadAll(msg.Body)
	return s.out.Encode(Received{Time: time.Now().UTC(), From: s.from, To: s.to, Subject: msg.Header.Get("Subject"),
		MessageID: msg.Header.Get("Message-ID"), Bytes: len(body)})
}
