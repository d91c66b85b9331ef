package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestComposeWebOnRedis: a two-service application from one Compose
// file, in a network namespace of the test's own: a Go front end (built
// by up from build:) that stores a value in Debian's redis-server (an
// image built first, named in image:) by its service name, on a named
// volume with appendonly; up waits for redis's health check (a TCP
// connect mapped from redis-cli ping); a second up changes nothing; the
// value survives down and up; an unsupported key is named; down -v
// removes the volume and nothing is left.
func TestComposeWebOnRedis(t *testing.T) {
	t.Parallel()
	needProgram(t, "redis-server")
	needProgram(t, "mkfs.erofs")
	e := netEnv(t)
	e.withBlkKernel()
	mnt := t.TempDir() // the mount point, redis's user's, for the volume's copy-up
	if err := os.Chown(mnt, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	os.Chmod(mnt, 0o755)
	e.buildTree("-t", "redis", "--user", "65534", "--port", "6379", "--add", mnt+":/data",
		"--entrypoint", `["/usr/bin/redis-server","--port","6379","--protected-mode","no","--save","","--dir","/data"]`, "redis-server")

	port := strconv.Itoa(20000 + (os.Getpid()+7)%20000)
	dir := t.TempDir()
	file := filepath.Join(dir, "compose.yaml")
	writeFile(t, file, `services:
  web:
    build: `+filepath.Join(repoRoot, "e2e/testdata/composeweb")+`
    ports: ["127.0.0.1:`+port+`:8080"]
    depends_on:
      redis:
        condition: service_healthy
  redis:
    image: redis
    command: ["--appendonly", "yes", "--appendfsync", "always"]
    volumes: ["data:/data"]
    cap_drop: [ALL]
    healthcheck:
      test: ["CMD", "redis-cli", "ping"]
      interval: 1s
      retries: 120
volumes:
  data:
`, 0o644)
	compose := func(args ...string) result {
		t.Helper()
		r := e.nosWithin(10*time.Minute, append([]string{"compose", "-f", file, "-p", "shop"}, args...)...)
		if r.code != 0 {
			t.Fatalf("nos compose %v: %v", args, r)
		}
		return r
	}
	curl := func(method, path string) string {
		t.Helper()
		out, err := e.inNS("curl", "-sS", "--max-time", "20", "-X", method, "http://127.0.0.1:"+port+path)
		if err != nil {
			t.Fatalf("curl %s %s: %v: %s", method, path, err, out)
		}
		return out
	}
	waitWeb := func() {
		t.Helper()
		waitFor(t, "the front end to answer", 3*time.Minute, func() bool {
			_, err := e.inNS("curl", "-sS", "--max-time", "5", "http://127.0.0.1:"+port+"/v")
			return err == nil
		})
	}

	r := compose("up", "-d", "--accel", accel)
	t.Logf("nos compose up -d:\n%s", r.stderr)
	if !strings.Contains(r.stderr, `nos: compose: service redis: key "cap_drop" is not supported; ignored`) {
		t.Errorf("the unsupported key is not named:\n%s", r.stderr)
	}
	if !strings.Contains(r.stderr, "shop-redis-1  Healthy") {
		t.Errorf("up did not wait for redis to be healthy:\n%s", r.stderr)
	}
	in := e.inspect("shop-redis-1")
	if h := in.State.Health; h == nil || h.Status != "healthy" {
		t.Errorf("redis health: %+v", h)
	}
	if l := in.Config.Labels; l["com.docker.compose.project"] != "shop" || l["com.docker.compose.service"] != "redis" || len(l["com.docker.compose.config-hash"]) != 64 {
		t.Errorf("labels in nos inspect: %v", l)
	}
	waitWeb()
	if got := curl("PUT", "/v?x=kept-across-down"); got != "OK" {
		t.Fatalf("PUT: %q", got)
	}
	if got := curl("GET", "/v"); got != "kept-across-down" {
		t.Fatalf("GET: %q", got)
	}

	// A second up changes nothing.
	ids := map[string]string{}
	for _, n := range []string{"shop-web-1", "shop-redis-1"} {
		ids[n] = e.inspect(n).ID
	}
	r = compose("up", "-d", "--accel", accel)
	t.Logf("nos compose up -d, again:\n%s", r.stderr)
	for n, id := range ids {
		if !strings.Contains(r.stderr, "Instance "+n+"  Running") || e.inspect(n).ID != id {
			t.Errorf("second up touched %s:\n%s", n, r.stderr)
		}
	}
	if ps := compose("ps"); !strings.Contains(ps.stdout, "shop-web-1") || !strings.Contains(ps.stdout, "shop-redis-1") || !strings.Contains(ps.stdout, "(healthy)") {
		t.Errorf("compose ps:\n%s", ps.stdout)
	}
	if logs := compose("logs", "web"); !strings.Contains(logs.stdout, "web-1 | ") || !strings.Contains(logs.stdout, "listening on :8080") {
		t.Errorf("compose logs web:\n%s", logs.stdout)
	}

	// down keeps the volume; up again finds the value.
	compose("down")
	if r := e.nos("ps", "-aq"); strings.TrimSpace(r.stdout) != "" {
		t.Errorf("instances left after down: %v", r)
	}
	if r := e.nos("volume", "ls", "--format", "{{.Name}}"); !strings.Contains(r.stdout, "shop_data") {
		t.Fatalf("down removed the volume: %v", r)
	}
	compose("up", "-d", "--accel", accel)
	waitWeb()
	if got := curl("GET", "/v"); got != "kept-across-down" {
		t.Errorf("GET after down and up: %q", got)
	}

	// down -v removes the volume, the network, everything.
	compose("down", "-v")
	if r := e.nos("volume", "ls", "--format", "{{.Name}}"); strings.Contains(r.stdout, "shop_data") {
		t.Errorf("down -v kept the volume: %v", r)
	}
	if r := e.nos("network", "ls", "--format", "{{.Name}}"); strings.Contains(r.stdout, "shop_default") {
		t.Errorf("down kept the network: %v", r)
	}
	waitFor(t, "nothing of nos left in the namespace", 30*time.Second, func() bool { return len(e.leftovers()) == 0 })
}
