// Package registry is what nos's registry clients share: which registries
// may be spoken to over plain HTTP, how references are parsed under that
// rule, a transport whose every phase has a timeout, and errors that say
// in one line what went wrong and what to do.
//
// Plain HTTP is for loopback registries (127.0.0.0/8, ::1, localhost)
// and for those named with --insecure-registry; everything else is HTTPS,
// enforced on every request (redirects included), not only at parsing.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Default timeouts of the transport's phases. A response header timeout
// bounds how long a registry that accepted a connection may stay silent;
// it does not bound how long a body takes to stream.
const (
	DefaultDialTimeout     = 10 * time.Second
	DefaultTLSTimeout      = 10 * time.Second
	DefaultResponseTimeout = 30 * time.Second
)

var (
	// ErrPlainHTTP reports a plain-HTTP request to a registry that may
	// only be reached over HTTPS.
	ErrPlainHTTP = errors.New("plain HTTP refused")
	// ErrUnreachable reports a registry that refused the connection or
	// did not answer in time.
	ErrUnreachable = errors.New("registry unreachable")
	// ErrUnauthorized reports a registry that refused the credentials, or
	// wants some and got none.
	ErrUnauthorized = errors.New("access refused")
	// ErrNotFound reports a repository or manifest the registry does not have.
	ErrNotFound = errors.New("no such image")
)

// Config says how to reach registries.
type Config struct {
	// Insecure lists registries, HOST or HOST:PORT, that may be reached
	// over plain HTTP besides the loopback ones.
	Insecure []string
	// Keychain finds credentials; nil means authn.DefaultKeychain (the
	// docker config file and its credential helpers).
	Keychain authn.Keychain
	// Timeouts of the transport's phases; zero means the default.
	DialTimeout, TLSTimeout, ResponseTimeout time.Duration
}

// CheckInsecure validates an --insecure-registry value, HOST[:PORT].
func CheckInsecure(s string) error {
	host := s
	if h, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			return fmt.Errorf("--insecure-registry %q: bad port", s)
		}
		host = h
	}
	host = strings.Trim(host, "[]")
	if host == "" || strings.ContainsAny(host, "/@ ") || strings.Contains(s, "://") {
		return fmt.Errorf("--insecure-registry %q: want HOST or HOST:PORT", s)
	}
	return nil
}

// IsLoopback reports whether host (without a port) is localhost or a
// loopback address.
func IsLoopback(host string) bool {
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// PlainHTTPAllowed reports whether the registry at hostport (HOST or
// HOST:PORT, as in a URL) may be spoken to without TLS.
func (c Config) PlainHTTPAllowed(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	if IsLoopback(host) {
		return true
	}
	for _, s := range c.Insecure {
		if strings.EqualFold(s, hostport) || strings.EqualFold(strings.Trim(s, "[]"), strings.Trim(host, "[]")) {
			return true
		}
	}
	return false
}

// Parse parses a registry reference. A registry that may be reached over
// plain HTTP is marked insecure, so that go-containerregistry falls back
// to HTTP when HTTPS fails; other registries are HTTPS only, whatever
// go-containerregistry's own heuristics (which include private networks).
func (c Config) Parse(ref string) (name.Reference, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return nil, fmt.Errorf("invalid reference %q: %w", ref, err)
	}
	if c.PlainHTTPAllowed(r.Context().RegistryStr()) {
		return name.ParseReference(ref, name.Insecure)
	}
	return r, nil
}

// Registry parses a registry name, HOST[:PORT], as Parse does references.
func (c Config) Registry(s string) (name.Registry, error) {
	if s == "" || strings.Contains(s, "/") {
		return name.Registry{}, fmt.Errorf("invalid registry %q: want HOST[:PORT]", s)
	}
	opts := []name.Option{name.StrictValidation}
	r, err := name.NewRegistry(s, opts...)
	if err != nil {
		return name.Registry{}, fmt.Errorf("invalid registry %q: %w", s, err)
	}
	if c.PlainHTTPAllowed(r.RegistryStr()) {
		return name.NewRegistry(s, append(opts, name.Insecure)...)
	}
	return r, nil
}

// Client is a Config made ready for one operation: its transport
// remembers the network errors it met, so that Explain can say whether
// the registry refused the connection or timed out.
type Client struct {
	cfg Config
	tr  *Transport
}

// Client returns a client for one operation.
func (c Config) Client() *Client {
	return &Client{cfg: c, tr: c.transport()}
}

// Transport is the HTTP transport of a Client: timeouts on every phase
// and plain HTTP refused where it is not allowed.
type Transport struct {
	next  http.RoundTripper
	allow func(hostport string) bool

	mu      sync.Mutex
	lastNet error
	timeout time.Duration
}

func (c Config) transport() *Transport {
	dial, tls, resp := c.DialTimeout, c.TLSTimeout, c.ResponseTimeout
	if dial == 0 {
		dial = DefaultDialTimeout
	}
	if tls == 0 {
		tls = DefaultTLSTimeout
	}
	if resp == 0 {
		resp = DefaultResponseTimeout
	}
	return &Transport{
		next: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			DialContext:           (&net.Dialer{Timeout: dial, KeepAlive: 30 * time.Second}).DialContext,
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          100,
			MaxIdleConnsPerHost:   50,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   tls,
			ResponseHeaderTimeout: resp,
			ExpectContinueTimeout: time.Second,
		},
		allow:   c.PlainHTTPAllowed,
		timeout: resp,
	}
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Scheme == "http" && !t.allow(req.URL.Host) {
		return nil, fmt.Errorf("%w to %s: only loopback registries and those named with --insecure-registry may be used without TLS", ErrPlainHTTP, req.URL.Host)
	}
	resp, err := t.next.RoundTrip(req)
	if err != nil && req.Context().Err() == nil {
		var ne net.Error
		var oe *net.OpError
		if errors.As(err, &ne) && ne.Timeout() || errors.As(err, &oe) {
			t.mu.Lock()
			t.lastNet = err
			t.mu.Unlock()
		}
	}
	return resp, err
}

// HTTPClient is an http.Client over the client's transport.
func (c *Client) HTTPClient() *http.Client {
	return &http.Client{Transport: c.tr}
}

// RoundTripper is the client's transport, for go-containerregistry's
// transport package.
func (c *Client) RoundTripper() http.RoundTripper { return c.tr }

// Keychain is the keychain the client finds credentials with.
func (c *Client) Keychain() authn.Keychain {
	if c.cfg.Keychain != nil {
		return c.cfg.Keychain
	}
	return authn.DefaultKeychain
}

// Options are the go-containerregistry remote options of the client:
// its context, credentials and transport, and a retry policy that
// retries connections reset under it but not a registry that timed out
// or refused (which would only multiply the wait).
func (c *Client) Options(ctx context.Context, extra ...remote.Option) []remote.Option {
	return append([]remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(c.Keychain()),
		remote.WithTransport(c.tr),
		remote.WithRetryPredicate(retryable),
	}, extra...)
}

func retryable(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, ErrPlainHTTP) || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false
	}
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	var tmp interface{ Temporary() bool }
	return errors.As(err, &tmp) && tmp.Temporary()
}
