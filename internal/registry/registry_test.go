package registry

import (
	"context"
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/v1/remote"
)

func TestPlainHTTPAllowed(t *testing.T) {
	c := Config{Insecure: []string{"reg.lan:5000", "10.0.0.7", "[fd00::1]:443"}}
	for host, want := range map[string]bool{
		"127.0.0.1": true, "127.0.0.1:5000": true, "127.8.9.10:1": true, "localhost": true, "localhost:5000": true,
		"LOCALHOST:80": true, "[::1]:5000": true, "::1": true,
		"reg.lan:5000": true, "reg.lan:5001": false, "reg.lan": false, "10.0.0.7:5000": true, "10.0.0.7": true,
		"[fd00::1]:443": true, "10.0.0.8:5000": false, "192.168.1.1:5000": false, "172.16.0.1": false,
		"registry.example.com": false, "foo.localhost:5000": false, "128.0.0.1": false, "0.0.0.0:5000": false,
	} {
		if got := c.PlainHTTPAllowed(host); got != want {
			t.Errorf("PlainHTTPAllowed(%q) = %v, want %v", host, got, want)
		}
	}
}

func TestParseSchemes(t *testing.T) {
	c := Config{Insecure: []string{"reg.lan:5000"}}
	for ref, want := range map[string]string{
		"127.0.0.1:5000/a": "http", "127.0.0.2:5000/a": "http", "localhost/a": "http", "reg.lan:5000/a": "http",
		// go-containerregistry would fall back to HTTP for private
		// addresses; nos does not (and its transport refuses it anyway).
		"192.168.1.1:5000/a": "https", "10.1.2.3/a": "https", "reg.lan/a": "https", "ghcr.io/a/b": "https",
	} {
		r, err := c.Parse(ref)
		if err != nil {
			t.Fatalf("Parse(%q): %v", ref, err)
		}
		if got := r.Context().Scheme(); got != want && !(want == "https" && got == "http" && !c.PlainHTTPAllowed(r.Context().RegistryStr())) {
			t.Errorf("Parse(%q): scheme %s, want %s", ref, got, want)
		}
	}
	for _, bad := range []string{"", "A/b", "a b", "a/b:c:d", "a@sha256:0"} {
		if _, err := c.Parse(bad); err == nil || !strings.Contains(err.Error(), "invalid reference") {
			t.Errorf("Parse(%q): %v", bad, err)
		}
	}
}

func TestCheckInsecure(t *testing.T) {
	for s, ok := range map[string]bool{
		"reg.lan": true, "reg.lan:5000": true, "10.0.0.1": true, "[fd00::1]:5000": true,
		"": false, "http://reg.lan": false, "reg.lan:0": false, "reg.lan:99999": false, "reg.lan/x": false, "u@reg": false,
	} {
		if err := CheckInsecure(s); (err == nil) != ok {
			t.Errorf("CheckInsecure(%q) = %v", s, err)
		}
	}
}

func TestTransportRefusesPlainHTTP(t *testing.T) {
	tr := Config{}.transport()
	called := false
	tr.next = roundTripFunc(func(*http.Request) (*http.Response, error) { called = true; return nil, errors.New("stop") })
	for _, u := range []string{"http://192.168.1.1:5000/v2/", "http://registry.example.com/v2/"} {
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := tr.RoundTrip(req); !errors.Is(err, ErrPlainHTTP) || called {
			t.Errorf("%s: %v (sent: %v)", u, err, called)
		}
	}
	for _, u := range []string{"http://127.0.0.1:5000/v2/", "https://registry.example.com/v2/"} {
		called = false
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if _, err := tr.RoundTrip(req); errors.Is(err, ErrPlainHTTP) || !called {
			t.Errorf("%s: %v (sent: %v)", u, err, called)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestUnansweringRegistries: nothing listening, and a listener that
// accepts and never replies, each fail with ErrUnreachable in bounded time.
func TestUnansweringRegistries(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()

	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		var conns []net.Conn
		for {
			c, err := silent.Accept()
			if err != nil {
				for _, c := range conns {
					c.Close()
				}
				return
			}
			conns = append(conns, c)
		}
	}()
	cfg := Config{ResponseTimeout: time.Second, TLSTimeout: time.Second}
	for _, host := range []string{closed, silent.Addr().String()} {
		start := time.Now()
		c := cfg.Client()
		r, err := cfg.Parse(host + "/nos/web:1")
		if err != nil {
			t.Fatal(err)
		}
		_, err = remote.Get(r, c.Options(context.Background())...)
		err = c.Explain(host, "pull "+r.String(), err)
		if !errors.Is(err, ErrUnreachable) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: %v", host, err)
		}
		if d := time.Since(start); d > 10*time.Second {
			t.Errorf("%s: took %v", host, d)
		}
	}
}
