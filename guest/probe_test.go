package guest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/nosproject/nos/guestapi"
)

func TestParseStatusLine(t *testing.T) {
	cases := []struct {
		line string
		want int // 0: an error
	}{
		{"HTTP/1.1 200 OK", 200},
		{"HTTP/1.0 503 Service Unavailable", 503},
		{"HTTP/1.1 301 Moved Permanently", 301},
		{"HTTP/1.1 404", 404},
		{"HTTP/1.1 204 ", 204},
		{"HTTP/1.9 100 Continue", 100},
		{"HTTP/1.1 599 x", 599},
		{"HTTP/1.1 200 OK with spaces and \x01 bytes", 200},

		{"", 0},
		{"HTTP/1.1", 0},
		{"HTTP/1.1 ", 0},
		{"HTTP/1.1 20", 0},
		{"HTTP/1.1 2000", 0},
		{"HTTP/1.1 200OK", 0},
		{"HTTP/1.1  200 OK", 0},
		{"HTTP/1.1 2x0 OK", 0},
		{"HTTP/1.1 -20 OK", 0},
		{"HTTP/1.1 099 OK", 0},
		{"HTTP/1.1 600 OK", 0},
		{"HTTP/1.x 200 OK", 0},
		{"HTTP/2 200 OK", 0},
		{"HTTP/2.0 200 OK", 0},
		{"http/1.1 200 OK", 0},
		{" HTTP/1.1 200 OK", 0},
		{"ICY 200 OK", 0},
		{"SSH-2.0-OpenSSH_9.6", 0},
	}
	for _, tc := range cases {
		got, err := parseStatusLine([]byte(tc.line))
		switch {
		case tc.want == 0 && err == nil:
			t.Errorf("parseStatusLine(%q) = %d, want an error", tc.line, got)
		case tc.want != 0 && err != nil:
			t.Errorf("parseStatusLine(%q): %v, want %d", tc.line, err, tc.want)
		case got != tc.want:
			t.Errorf("parseStatusLine(%q) = %d, want %d", tc.line, got, tc.want)
		}
	}
}

func TestCheckReply(t *testing.T) {
	cases := []struct {
		name, reply string
		code        int  // a *statusError with this code
		ok          bool // healthy
	}{
		{"200 with headers", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0, true},
		{"bare LF", "HTTP/1.0 302 Found\nLocation: /\n\n", 0, true},
		{"399", "HTTP/1.1 399 x\r\n", 0, true},
		{"199", "HTTP/1.1 199 x\r\n", 199, false},
		{"400", "HTTP/1.1 400 Bad Request\r\n", 400, false},
		{"503", "HTTP/1.1 503 Service Unavailable\r\n\r\nbusy", 503, false},
		{"empty", "", 0, false},
		{"cut short", "HTTP/1.1 200 OK", 0, false},
		{"not HTTP", "hello\r\n", 0, false},
		{"line at the limit", "HTTP/1.1 200 " + strings.Repeat("x", maxStatusLine-15) + "\r\n", 0, true},
		{"line over the limit", "HTTP/1.1 200 " + strings.Repeat("x", maxStatusLine) + "\r\n", 0, false},
	}
	for _, tc := range cases {
		for _, r := range []struct {
			name string
			r    io.Reader
		}{
			{"whole", strings.NewReader(tc.reply)},
			{"byte by byte", iotest.OneByteReader(strings.NewReader(tc.reply))},
		} {
			err := checkReply(r.r)
			var se *statusError
			switch {
			case tc.ok && err != nil:
				t.Errorf("%s, %s: %v, want healthy", tc.name, r.name, err)
			case !tc.ok && err == nil:
				t.Errorf("%s, %s: healthy, want an error", tc.name, r.name)
			case tc.code != 0 && (!errors.As(err, &se) || se.Code != tc.code):
				t.Errorf("%s, %s: %v, want HTTP %d", tc.name, r.name, err, tc.code)
			case tc.code == 0 && errors.As(err, &se):
				t.Errorf("%s, %s: %v, want an error that is no HTTP status", tc.name, r.name, err)
			}
		}
	}
}

func TestReadStatusLineIsBounded(t *testing.T) {
	r := &countingReader{r: iotest.HalfReader(strings.NewReader(strings.Repeat("HTTP/1.1 ", 10000)))}
	if _, err := readStatusLine(r); err == nil {
		t.Error("readStatusLine of an endless line: no error")
	}
	if r.n > maxStatusLine {
		t.Errorf("readStatusLine read %d bytes, want at most %d", r.n, maxStatusLine)
	}
}

func TestCheckProbe(t *testing.T) {
	cases := []struct {
		name    string
		p       guestapi.Probe
		timeout time.Duration // 0: invalid
	}{
		{"tcp default timeout", guestapi.Probe{Port: 80}, 5 * time.Second},
		{"port 1", guestapi.Probe{Port: 1, TimeoutMS: 1}, time.Millisecond},
		{"port 65535", guestapi.Probe{Port: 65535, TimeoutMS: 60000}, time.Minute},
		{"http", guestapi.Probe{Port: 8080, HTTPPath: "/healthz?full=1&x=%20y#f", TimeoutMS: 250}, 250 * time.Millisecond},
		{"http root", guestapi.Probe{Port: 8080, HTTPPath: "/"}, 5 * time.Second},

		{"port 0", guestapi.Probe{Port: 0}, 0},
		{"negative port", guestapi.Probe{Port: -80}, 0},
		{"port 65536", guestapi.Probe{Port: 65536}, 0},
		{"relative path", guestapi.Probe{Port: 80, HTTPPath: "healthz"}, 0},
		{"absolute URL", guestapi.Probe{Port: 80, HTTPPath: "http://x/"}, 0},
		{"space", guestapi.Probe{Port: 80, HTTPPath: "/a b"}, 0},
		{"header injection", guestapi.Probe{Port: 80, HTTPPath: "/\r\nX-Evil: 1"}, 0},
		{"LF", guestapi.Probe{Port: 80, HTTPPath: "/a\nb"}, 0},
		{"NUL", guestapi.Probe{Port: 80, HTTPPath: "/\x00"}, 0},
		{"tab", guestapi.Probe{Port: 80, HTTPPath: "/\t"}, 0},
		{"DEL", guestapi.Probe{Port: 80, HTTPPath: "/\x7f"}, 0},
		{"non-ASCII", guestapi.Probe{Port: 80, HTTPPath: "/é"}, 0},
		{"negative timeout", guestapi.Probe{Port: 80, TimeoutMS: -1}, 0},
		{"timeout over a minute", guestapi.Probe{Port: 80, TimeoutMS: 60001}, 0},
		{"timeout that would wrap a Duration", guestapi.Probe{Port: 80, TimeoutMS: 1 << 62}, 0},
	}
	for _, tc := range cases {
		got, err := checkProbe(tc.p)
		switch {
		case tc.timeout == 0 && !errors.Is(err, errInvalidProbe):
			t.Errorf("%s: checkProbe(%+v) = %v, %v; want errInvalidProbe", tc.name, tc.p, got, err)
		case tc.timeout != 0 && (err != nil || got != tc.timeout):
			t.Errorf("%s: checkProbe(%+v) = %v, %v; want %v", tc.name, tc.p, got, err, tc.timeout)
		}
	}
}

func TestProbeTCP(t *testing.T) {
	l := listen(t)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if err := runProbe(context.Background(), guestapi.Probe{Port: port(l), TimeoutMS: 2000}); err != nil {
		t.Errorf("TCP probe of a listening port: %v", err)
	}
}

func TestProbeClosedPort(t *testing.T) {
	l := listen(t)
	p := port(l)
	l.Close()
	for _, path := range []string{"", "/"} {
		err := runProbe(context.Background(), guestapi.Probe{Port: p, HTTPPath: path, TimeoutMS: 2000})
		if err == nil {
			t.Errorf("probe (path %q) of a closed port: healthy", path)
		}
	}
}

func TestProbeInvalid(t *testing.T) {
	// The listener proves that no connection is made for a refused probe.
	l := listen(t)
	accepted := make(chan bool, 1)
	go func() {
		c, err := l.Accept()
		if err == nil {
			c.Close()
		}
		accepted <- err == nil
	}()
	err := runProbe(context.Background(), guestapi.Probe{Port: port(l), HTTPPath: "/\r\nHost: evil"})
	if !errors.Is(err, errInvalidProbe) {
		t.Errorf("probe with CR LF in the path: %v, want errInvalidProbe", err)
	}
	l.Close()
	if <-accepted {
		t.Error("an invalid probe connected to the application")
	}
}

// TestProbeHTTP runs the probe against Go's own HTTP server: the request must
// be one a real server accepts, redirects are not followed, and the status
// alone decides.
func TestProbeHTTP(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		code, err := strconv.Atoi(strings.TrimPrefix(r.URL.Path, "/"))
		if err != nil {
			code = http.StatusTeapot
		}
		if code >= 300 && code < 400 {
			w.Header().Set("Location", "/503")
		}
		w.WriteHeader(code)
		fmt.Fprintln(w, "body")
	}))
	defer srv.Close()
	addr := srv.Listener.Addr().(*net.TCPAddr)
	for _, tc := range []struct {
		code int
		ok   bool
	}{
		{200, true},
		{204, true},
		{301, true},
		{404, false},
		{500, false},
		{503, false},
	} {
		err := runProbe(context.Background(), guestapi.Probe{Port: addr.Port, HTTPPath: "/" + strconv.Itoa(tc.code), TimeoutMS: 2000})
		var se *statusError
		switch {
		case tc.ok && err != nil:
			t.Errorf("HTTP %d: %v, want healthy", tc.code, err)
		case !tc.ok && (!errors.As(err, &se) || se.Code != tc.code):
			t.Errorf("HTTP %d: %v, want a statusError with that code", tc.code, err)
		case !tc.ok && err.Error() != "HTTP "+strconv.Itoa(tc.code):
			t.Errorf("HTTP %d: error %q, want %q", tc.code, err, "HTTP "+strconv.Itoa(tc.code))
		}
	}
}

// TestProbeHTTPRequest checks the exact bytes of the request.
func TestProbeHTTPRequest(t *testing.T) {
	l := listen(t)
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		var req strings.Builder
		br := bufio.NewReader(c)
		for !strings.HasSuffix(req.String(), "\r\n\r\n") {
			line, err := br.ReadString('\n')
			req.WriteString(line)
			if err != nil {
				break
			}
		}
		got <- req.String()
		io.WriteString(c, "HTTP/1.0 200 OK\r\n\r\n")
	}()
	if err := runProbe(context.Background(), guestapi.Probe{Port: port(l), HTTPPath: "/health?x=1", TimeoutMS: 2000}); err != nil {
		t.Errorf("probe: %v", err)
	}
	want := "GET /health?x=1 HTTP/1.0\r\nHost: localhost\r\nUser-Agent: nos-health\r\nConnection: close\r\n\r\n"
	if req := <-got; req != want {
		t.Errorf("request:\n%q\nwant\n%q", req, want)
	}
}

// TestProbeTimeout: an application that accepts and never answers fails an
// HTTP probe within its timeout.
func TestProbeTimeout(t *testing.T) {
	l := listen(t)
	holdConns(t, l)
	start := time.Now()
	err := runProbe(context.Background(), guestapi.Probe{Port: port(l), HTTPPath: "/", TimeoutMS: 200})
	elapsed := time.Since(start)
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("probe of a server that never answers: %v, want a deadline error", err)
	}
	if elapsed < 200*time.Millisecond || elapsed > 2*time.Second {
		t.Errorf("probe with a 200 ms timeout took %v", elapsed)
	}
	if err != nil && !strings.Contains(err.Error(), "no answer within 200ms") {
		t.Errorf("timeout error %q does not say so", err)
	}
}

func TestProbeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	l := listen(t)
	if err := runProbe(ctx, guestapi.Probe{Port: port(l)}); !errors.Is(err, context.Canceled) {
		t.Errorf("probe with a canceled context: %v, want context.Canceled", err)
	}
}

// FuzzStatusLine feeds the probe's reply reader and parser what an
// application may answer: it must never read more than maxStatusLine bytes,
// and its verdict must agree with the status line it parsed.
func FuzzStatusLine(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.0 503 Service Unavailable\r\nRetry-After: 1\r\n\r\n",
		"HTTP/1.1 301\n",
		"HTTP/1.1 404 \r\n",
		"HTTP/1.1 000 zero\r\n",
		"HTTP/1.1 999 nine\r\n",
		"HTTP/2 200\r\n",
		"HTTP/1.1 2OO OK\r\n",
		"HTTP/1.1 200 OK",
		"\r\n",
		"",
		"\x00\xff\xfe",
		"HTTP/1.1 200 " + strings.Repeat("x", maxStatusLine) + "\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		r := &countingReader{r: bytes.NewReader(data)}
		err := checkReply(r)
		if r.n > maxStatusLine {
			t.Fatalf("read %d bytes of the reply, want at most %d", r.n, maxStatusLine)
		}
		i := bytes.IndexByte(data, '\n')
		if i < 0 || i >= maxStatusLine {
			if err == nil {
				t.Fatalf("reply without a status line within %d bytes judged healthy", maxStatusLine)
			}
			return
		}
		line := bytes.TrimSuffix(data[:i], []byte("\r"))
		code, perr := parseStatusLine(line)
		if perr != nil {
			if err == nil {
				t.Fatalf("unparsable status line %q judged healthy", line)
			}
			return
		}
		if code < 100 || code > 599 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || string(line[9:12]) != strconv.Itoa(code) {
			t.Fatalf("parseStatusLine(%q) = %d", line, code)
		}
		if healthy := code >= 200 && code <= 399; healthy != (err == nil) {
			t.Fatalf("status %d judged %v", code, err)
		}
	})
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func listen(t *testing.T) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// holdConns accepts connections on l and never answers them; they close
// with the test.
func holdConns(t *testing.T, l net.Listener) {
	var mu sync.Mutex
	var conns []net.Conn
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
}

func port(l net.Listener) int { return l.Addr().(*net.TCPAddr).Port }
