package guest

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestReadReply(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		status   int
		body     string
		err      string
	}{
		{name: "content-length", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello, and more", status: 200, body: "hello"},
		{name: "until close", in: "HTTP/1.0 404 Not Found\r\nServer: x\r\n\r\nnope", status: 404, body: "nope"},
		{name: "chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n7\r\n, world\r\n0\r\nTrailer: x\r\n\r\n", status: 200, body: "hello, world"},
		{name: "interim", in: "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok", status: 201, body: "ok"},
		{name: "no content", in: "HTTP/1.1 204 No Content\r\n\r\n", status: 204},
		{name: "bare LF", in: "HTTP/1.1 200 OK\nContent-Length: 1\n\nx", status: 200, body: "x"},
		{name: "empty", in: "", err: "without an HTTP reply"},
		{name: "not HTTP", in: "SSH-2.0-OpenSSH\r\n", err: "not an HTTP/1.x status line"},
		{name: "cut headers", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n", err: "inside the HTTP headers"},
		{name: "short body", in: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhi", err: "reading the HTTP body"},
		{name: "too large", in: "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", err: "too large"},
		{name: "too large until close", in: "HTTP/1.1 200 OK\r\n\r\n" + strings.Repeat("x", 65), err: "too large"},
		{name: "too large chunked", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n41\r\n" + strings.Repeat("x", 65) + "\r\n0\r\n\r\n", err: "too large"},
		{name: "conflicting lengths", in: "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx", err: "Content-Length"},
		{name: "negative length", in: "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", err: "Content-Length"},
		{name: "gzip coding", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", err: "Transfer-Encoding"},
		{name: "bad chunk", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", err: "chunk size"},
		{name: "chunk without CRLF", in: "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nxy\r\n0\r\n\r\n", err: "line ending"},
		{name: "header without colon", in: "HTTP/1.1 200 OK\r\nbogus\r\n\r\n", err: "not an HTTP header"},
		{name: "long line", in: "HTTP/1.1 200 OK\r\nX: " + strings.Repeat("a", 5000) + "\r\n\r\n", err: "longer than"},
		{name: "many headers", in: "HTTP/1.1 200 OK\r\n" + strings.Repeat("X: y\r\n", 200) + "\r\n", err: "HTTP headers over"},
		{name: "endless interim", in: strings.Repeat("HTTP/1.1 100 Continue\r\n\r\n", 10), err: "interim"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := readReply(strings.NewReader(tc.in), 64)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want an error with %q", r, err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if r.Status != tc.status || string(r.Body) != tc.body {
				t.Errorf("got %d %q, want %d %q", r.Status, r.Body, tc.status, tc.body)
			}
		})
	}
}

func FuzzReadReply(f *testing.F) {
	f.Add([]byte("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 404 x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := readReply(strings.NewReader(string(b)), 1024)
		if err == nil && (r.Status < 200 || r.Status > 599 || len(r.Body) > 1024) {
			t.Fatalf("accepted %q as %d with %d bytes", b, r.Status, len(r.Body))
		}
	})
}

// serverAddr is an httptest server's address.
func serverAddr(t *testing.T, s *httptest.Server) netip.AddrPort {
	t.Helper()
	u, err := url.Parse(s.URL)
	if err != nil {
		t.Fatal(err)
	}
	return netip.MustParseAddrPort(u.Host)
}

func TestHTTPDo(t *testing.T) {
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Header().Set("X-Got", r.Method+" "+r.URL.RequestURI()+" "+r.Host+" "+r.Header.Get("X-Token")+" "+string(b))
		if r.URL.Path == "/big" {
			w.Write([]byte(strings.Repeat("x", 10000))) // chunked: no length set, flushed in pieces
			return
		}
		w.Write([]byte("hi"))
	}))
	defer s.Close()
	addr := serverAddr(t, s)
	ctx := context.Background()
	r, err := httpDo(ctx, addr, httpRequest{Method: "PUT", Path: "/a?b=c", Host: "example", Header: [][2]string{{"X-Token", "t"}}, Body: []byte("body")}, 100)
	if err != nil || r.Status != 200 || string(r.Body) != "hi" {
		t.Fatalf("PUT: %v, %v", r, err)
	}
	if r, err := httpDo(ctx, addr, httpRequest{Method: "GET", Path: "/big", Host: "x"}, 20000); err != nil || len(r.Body) != 10000 {
		t.Fatalf("GET /big: %v", err)
	}
	if _, err := httpDo(ctx, addr, httpRequest{Method: "GET", Path: "/big", Host: "x"}, 100); !errors.Is(err, errBodyTooLarge) {
		t.Errorf("GET /big with a small bound: %v, want errBodyTooLarge", err)
	}
	if _, err := httpDo(ctx, addr, httpRequest{Method: "GET", Path: "/a\r\nX: y", Host: "x"}, 100); err == nil {
		t.Error("a path with CRLF was sent")
	}
	if _, err := httpDo(ctx, addr, httpRequest{Method: "GET", Path: "/", Host: "x", Header: [][2]string{{"X", "a\nb"}}}, 100); err == nil {
		t.Error("a header with LF was sent")
	}
}

func TestHTTPDoTimeout(t *testing.T) {
	block := make(chan struct{})
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-block }))
	defer s.Close()
	defer close(block)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := httpDo(ctx, serverAddr(t, s), httpRequest{Method: "GET", Path: "/", Host: "x"}, 100)
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 2*time.Second {
		t.Errorf("a server that does not answer: %v after %v", err, time.Since(start))
	}
}
