package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// Probe limits. The reply is written by the application, which the init
// does not trust: it reads at most maxStatusLine bytes of it.
const (
	defaultProbeTimeout = 5000 * time.Millisecond
	maxProbeTimeout     = 60000 * time.Millisecond
	maxStatusLine       = 4096
)

// errInvalidProbe is returned for a probe the init refuses to run.
var errInvalidProbe = errors.New("invalid probe")

// statusError is an HTTP answer outside 200–399.
type statusError struct{ Code int }

func (e *statusError) Error() string { return "HTTP " + strconv.Itoa(e.Code) }

// runProbe checks the application from inside the guest, as the host asked:
// a TCP connect to 127.0.0.1:Port or, with HTTPPath, a GET of that path that
// must answer 2xx or 3xx. It returns nil when the application is healthy.
// The probe's timeout bounds the whole check.
//
// Inside the guest a port nobody listens on refuses the connection, so the
// dial alone tells; no user-mode NAT stands between the init and the app.
func runProbe(ctx context.Context, p guestapi.Probe) error {
	timeout, err := checkProbe(p)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = probe(ctx, p)
	// The connection's deadline is the context's, and may fire first.
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(ctx.Err(), context.DeadlineExceeded)) {
		return fmt.Errorf("no answer within %v: %w", timeout, err)
	}
	return err
}

func probe(ctx context.Context, p guestapi.Probe) error {
	// DialTCP with an address, not DialContext with a string: no resolver
	// (and its DNS client) is linked into the init.
	var d net.Dialer
	conn, err := d.DialTCP(ctx, "tcp", netip.AddrPort{}, netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), uint16(p.Port)))
	if err != nil {
		return err
	}
	defer conn.Close()
	if p.HTTPPath == "" {
		return nil
	}
	if deadline, ok := ctx.Deadline(); ok {
		if err := conn.SetDeadline(deadline); err != nil {
			return err
		}
	}
	req := "GET " + p.HTTPPath + " HTTP/1.0\r\nHost: localhost\r\nUser-Agent: nos-health\r\nConnection: close\r\n\r\n"
	if _, err := io.WriteString(conn, req); err != nil {
		return fmt.Errorf("sending GET %s: %w", p.HTTPPath, err)
	}
	return checkReply(conn)
}

// checkProbe validates a probe and returns its timeout.
func checkProbe(p guestapi.Probe) (time.Duration, error) {
	if p.Port < 1 || p.Port > 65535 {
		return 0, fmt.Errorf("%w: port %d is not in 1–65535", errInvalidProbe, p.Port)
	}
	if p.HTTPPath != "" {
		if err := checkPath(p.HTTPPath); err != nil {
			return 0, err
		}
	}
	// Compared in milliseconds: a huge value must not wrap the Duration.
	switch {
	case p.TimeoutMS == 0:
		return defaultProbeTimeout, nil
	case p.TimeoutMS < 0 || int64(p.TimeoutMS) > maxProbeTimeout.Milliseconds():
		return 0, fmt.Errorf("%w: timeout %d ms is not in 1–%d", errInvalidProbe, p.TimeoutMS, maxProbeTimeout.Milliseconds())
	default:
		return time.Duration(p.TimeoutMS) * time.Millisecond, nil
	}
}

// checkPath accepts an HTTP path that goes verbatim into the request line:
// it starts with "/" and holds printable ASCII only, so no space, CR or LF
// can end the request target or inject a header. Anything else must come
// percent-encoded.
func checkPath(path string) error {
	if path[0] != '/' {
		return fmt.Errorf("%w: HTTP path %q does not start with /", errInvalidProbe, path)
	}
	for i := 0; i < len(path); i++ {
		if c := path[i]; c <= ' ' || c >= 0x7f {
			return fmt.Errorf("%w: HTTP path %q has byte %#02x at %d; only printable ASCII without spaces", errInvalidProbe, path, c, i)
		}
	}
	return nil
}

// checkReply reads the status line of an HTTP reply, at most maxStatusLine
// bytes of it, and judges its status: nil for 200–399, a *statusError for
// any other valid status.
func checkReply(r io.Reader) error {
	line, err := readStatusLine(r)
	if err != nil {
		return err
	}
	code, err := parseStatusLine(line)
	if err != nil {
		return err
	}
	if code < 200 || code > 399 {
		return &statusError{Code: code}
	}
	return nil
}

// readStatusLine returns the reply's first line without its line ending,
// reading no more than maxStatusLine bytes.
func readStatusLine(r io.Reader) ([]byte, error) {
	buf := make([]byte, maxStatusLine)
	n := 0
	for {
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return bytes.TrimSuffix(buf[:i], []byte("\r")), nil
		}
		if n == len(buf) {
			return nil, fmt.Errorf("no HTTP status line in the first %d bytes of the reply", maxStatusLine)
		}
		m, err := r.Read(buf[n:])
		n += m
		if err != nil && m == 0 {
			if errors.Is(err, io.EOF) {
				if n == 0 {
					return nil, errors.New("connection closed without an HTTP reply")
				}
				return nil, fmt.Errorf("connection closed inside the HTTP status line %q", buf[:n])
			}
			return nil, fmt.Errorf("reading the HTTP reply: %w", err)
		}
	}
}

// parseStatusLine parses "HTTP/1.x NNN reason" (the reason may be absent)
// and returns the status code, 100–599.
func parseStatusLine(line []byte) (int, error) {
	// "HTTP/1.1 200" is the shortest valid line: 12 bytes.
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || !isDigit(line[7]) || line[8] != ' ' ||
		(len(line) > 12 && line[12] != ' ') {
		return 0, fmt.Errorf("not an HTTP/1.x status line: %q", truncate(line))
	}
	code := 0
	for _, c := range line[9:12] {
		if !isDigit(c) {
			return 0, fmt.Errorf("not an HTTP status code in %q", truncate(line))
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 || code > 599 {
		return 0, fmt.Errorf("HTTP status %d out of range in %q", code, truncate(line))
	}
	return code, nil
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// truncate shortens an untrusted line for an error message.
func truncate(b []byte) []byte {
	const limit = 64
	if len(b) > limit {
		return b[:limit]
	}
	return b
}
