// Package mail sends plain-text mail through the operator's SMTP server:
// the control plane's sign-in mails (email verification, password reset)
// and its alert emails.
// A message carries only what it needs: sender, recipient, subject, date, a
// random Message-ID and the text. Nothing about the request that caused it
// (no client address, no user agent) is ever put in one.
//
// It imports the standard library only.
package mail

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"
)

// Config is the mail server messages go through.
type Config struct {
	// Addr is the server's host:port; empty disables mail.
	Addr string
	// From is the sender address.
	From string
	// Username and Password, when set, authenticate with PLAIN, which
	// net/smtp performs only over TLS (STARTTLS is used whenever the
	// server offers it) or to localhost.
	Username, Password string
	// HelloName is the name sent in EHLO (default "localhost").
	HelloName string
	// Timeout bounds one delivery (default 10s).
	Timeout time.Duration
}

// Enabled reports whether a mail server is configured.
func (c Config) Enabled() bool { return c.Addr != "" }

// Message is a plain-text mail to one recipient.
type Message struct {
	To      string
	Subject string
	Text    string
	Date    time.Time
	// MessageID is the Message-ID without its angle brackets, for a
	// message whose copies must be recognised as one (an alert event
	// retried); empty gives a random one.
	MessageID string
	// AutoSubmitted marks a message no person caused (RFC 3834
	// "auto-generated"), so that auto-responders do not answer it.
	AutoSubmitted bool
}

// Error is a failed delivery. Temporary errors (no connection, a 4xx
// answer) may succeed when tried again; a 5xx answer will not. Its text
// names the stage and the SMTP code, never an address.
type Error struct {
	Temporary bool
	msg       string
}

func (e *Error) Error() string { return e.msg }

// Send delivers m through the server of cfg, with STARTTLS when the server
// offers it.
func Send(ctx context.Context, cfg Config, m Message) error {
	if cfg.HelloName == "" {
		cfg.HelloName = "localhost"
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	host, _, err := net.SplitHostPort(cfg.Addr)
	if err != nil {
		return &Error{msg: "SMTP address is not host:port"}
	}
	if cfg.From == "" {
		return &Error{msg: "SMTP sender (From) is not configured"}
	}
	if strings.ContainsAny(m.To, "\r\n") || strings.ContainsAny(cfg.From, "\r\n") {
		return &Error{msg: "address holds a line break"}
	}
	d := net.Dialer{Timeout: cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return &Error{Temporary: true, msg: "SMTP server unreachable"}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	conn.SetDeadline(time.Now().Add(cfg.Timeout))
	c, err := smtp.NewClient(conn, host)
	if err != nil {
		conn.Close()
		return failure("greeting", err)
	}
	defer c.Close()
	if err := c.Hello(cfg.HelloName); err != nil {
		return failure("EHLO", err)
	}
	if ok, _ := c.Extension("STARTTLS"); ok {
		if err := c.StartTLS(&tls.Config{ServerName: host, MinVersion: tls.VersionTLS12}); err != nil {
			return failure("STARTTLS", err)
		}
	}
	if cfg.Username != "" {
		if err := c.Auth(smtp.PlainAuth("", cfg.Username, cfg.Password, host)); err != nil {
			return failure("AUTH", err)
		}
	}
	if err := c.Mail(cfg.From); err != nil {
		return failure("MAIL", err)
	}
	if err := c.Rcpt(m.To); err != nil {
		return failure("RCPT", err)
	}
	w, err := c.Data()
	if err != nil {
		return failure("DATA", err)
	}
	if _, err := w.Write(Format(cfg.From, m)); err != nil {
		return failure("DATA", err)
	}
	if err := w.Close(); err != nil {
		return failure("DATA", err)
	}
	c.Quit()
	return nil
}

// failure describes an SMTP error by its stage and code.
func failure(stage string, err error) error {
	var te *textproto.Error
	if errors.As(err, &te) {
		return &Error{Temporary: te.Code < 500, msg: fmt.Sprintf("SMTP %s answered %d", stage, te.Code)}
	}
	return &Error{Temporary: true, msg: "SMTP " + stage + " failed"}
}

// Format renders m as an RFC 5322 message from from: these headers and
// the quoted-printable UTF-8 text, nothing else.
func Format(from string, m Message) []byte {
	oneLine := strings.NewReplacer("\r", " ", "\n", " ")
	id := m.MessageID
	if id == "" {
		var r [16]byte
		rand.Read(r[:])
		domain := "traceless.invalid"
		if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
			domain = d
		}
		id = hex.EncodeToString(r[:]) + "@" + domain
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\n", oneLine.Replace(from))
	fmt.Fprintf(&b, "To: %s\r\n", oneLine.Replace(m.To))
	fmt.Fprintf(&b, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", oneLine.Replace(m.Subject)))
	fmt.Fprintf(&b, "Date: %s\r\n", m.Date.UTC().Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s>\r\n", oneLine.Replace(id))
	b.WriteString("MIME-Version: 1.0\r\n")
	b.WriteString("Content-Type: text/plain; charset=utf-8\r\n")
	b.WriteString("Content-Transfer-Encoding: quoted-printable\r\n")
	if m.AutoSubmitted {
		b.WriteString("Auto-Submitted: auto-generated\r\n")
	}
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	qp.Write([]byte(strings.ReplaceAll(m.Text, "\n", "\r\n")))
	qp.Close()
	return []byte(b.String())
}
