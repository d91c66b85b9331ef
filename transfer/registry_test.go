package transfer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/nosproject/nos/internal/registry"
	"github.com/nosproject/nos/store"
)

// testRegistry is go-containerregistry's in-memory registry on a loopback
// port, behind basic authentication when user is set; it counts blob
// GETs.
type testRegistry struct {
	host      string
	blobGets  atomic.Int64
	user, pwd string
}

func newRegistry(t *testing.T, user, pwd string) *testRegistry {
	t.Helper()
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	r := &testRegistry{user: user, pwd: pwd}
	h := ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.user != "" {
			u, p, ok := req.BasicAuth()
			if !ok || u != r.user || p != r.pwd {
				w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
				w.WriteHeader(http.StatusUnauthorized)
				return
			}
		}
		if req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/blobs/") {
			r.blobGets.Add(1)
		}
		h.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	r.host = strings.TrimPrefix(srv.URL, "http://")
	return r
}

func TestPushPull(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t, "", "")
	src := newStore(t)
	img := fakeImage(t, src, "web", "1", "a")
	ref := reg.host + "/nos/web:1"
	var progressed atomic.Int64
	pushed, err := Push(ctx, src, "web:1", ref, Options{Progress: func(done, total int64) { progressed.Store(done) }})
	if err != nil {
		t.Fatal(err)
	}
	if progressed.Load() == 0 {
		t.Error("push reported no progress")
	}
	local, err := src.Resolve(ctx, ref)
	if err != nil || local.Manifest.Digest != pushed.Digest || local.Created != img.Created {
		t.Fatalf("push did not tag %s locally with the pushed manifest: %+v, %v", ref, local, err)
	}

	dst := newStore(t)
	pulled, err := Pull(ctx, dst, ref, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if pulled.Digest != pushed.Digest || pulled.UpToDate || pulled.Blobs != 3 {
		t.Fatalf("pull: %+v, pushed %+v", pulled, pushed)
	}
	got, err := dst.Resolve(ctx, ref)
	if err != nil || got.Manifest.Digest != pushed.Digest || !got.Created.Equal(img.Created) || got.Size != local.Size {
		t.Fatalf("pulled image: %+v, %v", got, err)
	}
	gets := reg.blobGets.Load()
	again, err := Pull(ctx, dst, ref, Options{})
	if err != nil || !again.UpToDate || reg.blobGets.Load() != gets {
		t.Fatalf("second pull: %+v, %v, %d blob GETs", again, err, reg.blobGets.Load()-gets)
	}
	// Pushing what was pulled gives the same manifest.
	if re, err := Push(ctx, dst, ref, reg.host+"/nos/web:copy", Options{}); err != nil || re.Digest != pushed.Digest {
		t.Fatalf("re-push: %+v, %v", re, err)
	}
	// Another tag of the same image: no blob moves, but it is tagged.
	before := reg.blobGets.Load()
	if p, err := Pull(ctx, src, reg.host+"/nos/web:copy", Options{}); err != nil || p.UpToDate || p.Blobs != 0 || reg.blobGets.Load() != before {
		t.Fatalf("pull of a new tag of known blobs: %+v, %v", p, err)
	}
}

func TestPullRefusesContainerImagesAndBadRefs(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t, "", "")
	r, err := name.ParseReference(reg.host+"/library/plain:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(1024, 2)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img); err != nil {
		t.Fatal(err)
	}
	st := newStore(t)
	before := snapshot(t, st)
	_, err = Pull(ctx, st, r.String(), Options{})
	if !errors.Is(err, ErrNotNosImage) || !strings.Contains(err.Error(), "nos build --from-oci "+r.String()) || strings.Contains(err.Error(), "\n") {
		t.Errorf("pulling a container image: %v", err)
	}
	for _, bad := range []string{"Bad Ref", "a b", reg.host + "/x@sha256:" + zeros, ""} {
		if _, err := Pull(ctx, st, bad, Options{}); err == nil || strings.Contains(err.Error(), "\n") {
			t.Errorf("pull %q: %v", bad, err)
		}
	}
	if _, err := Pull(ctx, st, reg.host+"/nos/missing:1", Options{}); !errors.Is(err, registry.ErrNotFound) {
		t.Errorf("a missing image: %v", err)
	}
	if len(snapshot(t, st)) != len(before) {
		t.Error("refused pulls changed the store")
	}
}

func TestLoginPushWithCredentials(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t, "u", "secret")
	src := newStore(t)
	fakeImage(t, src, "web", "1", "a")
	ref := reg.host + "/nos/web:1"
	_, err := Push(ctx, src, "web:1", ref, Options{})
	if !errors.Is(err, registry.ErrUnauthorized) || !strings.Contains(err.Error(), "nos login "+reg.host) {
		t.Fatalf("push without credentials: %v", err)
	}
	if _, err := Login(ctx, registry.Config{}, reg.host, "u", "wrong"); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("login with a wrong password: %v", err)
	}
	conf := filepath.Join(os.Getenv("DOCKER_CONFIG"), "config.json")
	if _, err := os.Stat(conf); err == nil {
		t.Fatal("a refused login wrote the config")
	}
	where, err := Login(ctx, registry.Config{}, reg.host, "u", "secret")
	if err != nil || where != conf {
		t.Fatalf("login: %q, %v", where, err)
	}
	fi, err := os.Stat(conf)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("config file: %v, %v", fi, err)
	}
	var cf struct {
		Auths map[string]struct{ Auth string }
	}
	b, _ := os.ReadFile(conf)
	if err := json.Unmarshal(b, &cf); err != nil || cf.Auths[reg.host].Auth != "dTpzZWNyZXQ=" { // base64("u:secret")
		t.Fatalf("config file %s:\n%s", conf, b)
	}
	if _, err := Push(ctx, src, "web:1", ref, Options{}); err != nil {
		t.Fatalf("push after login: %v", err)
	}
	if removed, err := Logout(registry.Config{}, reg.host); err != nil || !removed {
		t.Fatalf("logout: %v, %v", removed, err)
	}
	if removed, err := Logout(registry.Config{}, reg.host); err != nil || removed {
		t.Fatalf("second logout: %v, %v", removed, err)
	}
	if _, err := Pull(ctx, newStore(t), ref, Options{}); !errors.Is(err, registry.ErrUnauthorized) {
		t.Fatalf("pull after logout: %v", err)
	}
}

func TestPushRefusesCorruptStore(t *testing.T) {
	ctx := context.Background()
	reg := newRegistry(t, "", "")
	st := newStore(t)
	img := fakeImage(t, st, "web", "1", "a")
	man, err := st.Manifest(img.Manifest.Digest)
	if err != nil {
		t.Fatal(err)
	}
	p := st.BlobPath(man.Layers[1].Digest)
	if err := os.WriteFile(p, []byte("initramfs b"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Push(ctx, st, "web:1", reg.host+"/nos/web:1", Options{}); !errors.Is(err, store.ErrDigestMismatch) {
		t.Fatalf("pushing a corrupt blob: %v", err)
	}
}

func TestIsRemote(t *testing.T) {
	for ref, want := range map[string]bool{
		"web": false, "web:1": false, "nos/web": false, "127.0.0.1:5000/web": true, "localhost/web": true,
		"registry.example.com/a/b:1": true, "[::1]:5000/x": true, "localhost": false, "a.b": false,
	} {
		if got := IsRemote(ref); got != want {
			t.Errorf("IsRemote(%q) = %v, want %v", ref, got, want)
		}
	}
}
