package oci

import (
	"context"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// testRegistry serves an in-memory registry on loopback and returns its
// host:port. Registry credentials come from an empty Docker configuration.
func testRegistry(t *testing.T) string {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	srv := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

// tamperingRegistry serves an in-memory registry through edit, which may
// change any response.
func tamperingRegistry(t *testing.T, edit func(r *http.Request, rec *httptest.ResponseRecorder)) string {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	inner := registry.New(registry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := httptest.NewRecorder()
		inner.ServeHTTP(rec, r)
		if r.Method == http.MethodGet {
			edit(r, rec)
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Set("Content-Length", strconv.Itoa(rec.Body.Len()))
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u.Host
}

func TestRegistryCorruptedBlob(t *testing.T) {
	img := appImage(t, "x")
	ls, _ := img.Layers()
	bad, _ := ls[1].Digest()
	host := tamperingRegistry(t, func(r *http.Request, rec *httptest.ResponseRecorder) {
		if strings.HasSuffix(r.URL.Path, "/blobs/"+bad.String()) && rec.Body.Len() > 0 {
			b := rec.Body.Bytes()
			b[len(b)/2] ^= 0xff
		}
	})
	r, _ := name.ParseReference(host + "/team/app:v1")
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	_, err := openOK(t, r.String()).Extract(context.Background(), t.TempDir(), Limits{})
	wantErr(t, err, "layer 2: digest mismatch")
}

func TestRegistryWrongContentType(t *testing.T) {
	host := tamperingRegistry(t, func(r *http.Request, rec *httptest.ResponseRecorder) {
		if strings.Contains(r.URL.Path, "/manifests/") {
			rec.Header().Set("Content-Type", "text/plain")
		}
	})
	amd := appImage(t, "ct")
	r, _ := name.ParseReference(host + "/team/multi:latest")
	if err := remote.WriteIndex(r, platformIndex(t, map[string]v1.Image{"linux/amd64": amd, "linux/arm64": armImage(t, "arm64", "")})); err != nil {
		t.Fatal(err)
	}
	extractOK(t, openOK(t, r.String()), "ct")
}

func TestRegistryPull(t *testing.T) {
	host := testRegistry(t)
	img := appImage(t, "pulled")
	ref := host + "/team/app:v1"
	r, _ := name.ParseReference(ref)
	if r.Context().Scheme() != "http" {
		t.Fatalf("a loopback registry is reached over %s", r.Context().Scheme())
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	im := openOK(t, ref)
	cfg, _ := im.Config()
	if cfg.Digest != digestOf(t, img).String() || cfg.WorkingDir != "/srv" {
		t.Fatalf("config %+v", cfg)
	}
	extractOK(t, im, "pulled")

	// By digest.
	extractOK(t, openOK(t, host+"/team/app@"+digestOf(t, img).String()), "pulled")

	// A multi-platform index.
	amd := appImage(t, "multi")
	idx := platformIndex(t, map[string]v1.Image{"linux/arm64": armImage(t, "arm64", ""), "linux/amd64": amd})
	ir, _ := name.ParseReference(host + "/team/multi:latest")
	if err := remote.WriteIndex(ir, idx); err != nil {
		t.Fatal(err)
	}
	im = openOK(t, host+"/team/multi")
	if cfg, _ := im.Config(); cfg.Digest != digestOf(t, amd).String() {
		t.Fatalf("picked %s", cfg.Digest)
	}
	extractOK(t, im, "multi")

	// arm64 only.
	ar, _ := name.ParseReference(host + "/team/arm:latest")
	remote.WriteIndex(ar, platformIndex(t, map[string]v1.Image{"linux/arm64": armImage(t, "arm64", "")}))
	_, err := Open(context.Background(), host+"/team/arm")
	wantErr(t, err, "image is linux/arm64; nos runs linux/amd64 images")
}

func TestRegistryMissingImage(t *testing.T) {
	host := testRegistry(t)
	r, _ := name.ParseReference(host + "/team/app:v1")
	if err := remote.Write(r, appImage(t, "x")); err != nil {
		t.Fatal(err)
	}
	for _, ref := range []string{host + "/team/app:v2", host + "/team/other:v1"} {
		_, err := Open(context.Background(), ref)
		wantErr(t, err, ref+" does not resolve: the registry has no such image (manifest unknown)")
	}
}

func TestRegistryRefusesAccess(t *testing.T) {
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
	}))
	defer srv.Close()
	host := strings.TrimPrefix(srv.URL, "http://")
	_, err := Open(context.Background(), host+"/private/app:v1")
	wantErr(t, err, "registry "+host+" refused access to "+host+"/private/app:v1 (HTTP 401)", "credentials",
		"docker login "+host, "~/.docker/config.json")
	if hits.Load() == 0 {
		t.Fatal("the registry was not asked")
	}

	srv403 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v2/" {
			return
		}
		w.WriteHeader(http.StatusForbidden)
	}))
	defer srv403.Close()
	host = strings.TrimPrefix(srv403.URL, "http://")
	_, err = Open(context.Background(), host+"/private/app:v1")
	wantErr(t, err, "refused access", "(HTTP 403)", "credentials")
}

func TestPlainHTTPOnlyToLoopback(t *testing.T) {
	for h, want := range map[string]bool{
		"127.0.0.1": true, "127.1.2.3": true, "::1": true, "localhost": true, "reg.localhost": true,
		"10.0.0.1": false, "192.168.1.1": false, "registry.local": false, "example.com": false,
	} {
		if isLoopbackHost(h) != want {
			t.Errorf("isLoopbackHost(%q) = %v", h, !want)
		}
	}
	for ref, want := range map[string]string{
		"localhost/app": "http", "localhost:5000/app": "http", "127.0.0.1/app": "http", "127.0.0.1:5000/app:v1": "http",
		"[::1]:5000/app": "http", "example.com/app": "https", "alpine": "https", "10.0.0.1:5000/app": "http",
	} {
		r, err := parseRef(ref)
		if err != nil || r.Context().Scheme() != want {
			t.Errorf("%s: scheme %s (%v), want %s", ref, r.Context().Scheme(), err, want)
		}
	}
	// 10.0.0.1 is given plain HTTP by go-containerregistry (RFC 1918); the
	// transport refuses it, before any connection is attempted.
	var called bool
	g := plainHTTPGuard{roundTripFunc(func(*http.Request) (*http.Response, error) { called = true; return nil, nil })}
	req, _ := http.NewRequest("GET", "http://10.1.2.3:5000/v2/", nil)
	if _, err := g.RoundTrip(req); err == nil || called || !strings.Contains(err.Error(), "refusing plain HTTP") {
		t.Fatalf("err %v, called %v", err, called)
	}
	req, _ = http.NewRequest("GET", "https://10.1.2.3:5000/v2/", nil)
	if g.RoundTrip(req); !called {
		t.Fatal("HTTPS is let through")
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
