package e2e

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/home"
)

// volumeEnv is a nos home with the blk,net kernel and the probe built
// with the blk feature, so that it can mount volumes.
func volumeEnv(t *testing.T) *nosEnv {
	t.Helper()
	e := newEnv(t)
	e.withBlkKernel()
	if r := e.nos("build", "-t", "kv", "--features", "net,blk", "--add", "./e2e/testdata/software:/data", "./e2e/testdata/probe"); r.code != 0 {
		t.Fatalf("build: %v", r)
	}
	return e
}

// TestVolumeKeepsAcknowledgedWrites: a key-value app appends records with
// fsync to a volume and acknowledges each over HTTP. Each round writes
// records and, at a random moment, ends the VM a way a crash would (QEMU
// killed, nos kill, the monitor killed) or gracefully; a new instance on
// the same volume must find every acknowledged record, with its checksum.
// At the end the stopped volume's file system is clean by e2fsck -fn.
func TestVolumeKeepsAcknowledgedWrites(t *testing.T) {
	t.Parallel()
	e := volumeEnv(t)
	ends := []string{"kill-qemu", "nos-kill", "kill-monitor", "stop", "kill-qemu", "kill-qemu", "nos-kill", "kill-monitor", "kill-qemu", "stop"}
	var (
		mu    sync.Mutex
		acked []string
	)
	client := &http.Client{Timeout: 5 * time.Second}
	check := func(round int, base string) {
		t.Helper()
		body := waitHTTP(t, nil, base+"/all", 3*time.Minute)
		have := map[string]bool{}
		for _, l := range strings.Split(body, "\n") {
			have[l] = true
		}
		mu.Lock()
		defer mu.Unlock()
		for _, a := range acked {
			if !have[a] {
				t.Fatalf("round %d: the acknowledged record %q is lost (have %d records, %d acknowledged)", round, a, len(have)-1, len(acked))
			}
		}
	}
	for round, end := range ends {
		port := freePort(t)
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		id := e.runDetached("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "-v", "kvdata:/var/kv", "kv", "kv", "/var/kv")
		check(round, base)

		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				v := fmt.Sprintf("r%d-%d", round, i)
				resp, err := client.Post(base+"/put?v="+v, "text/plain", nil)
				if err != nil {
					time.Sleep(20 * time.Millisecond)
					continue
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK && string(b) == "ok\n" {
					mu.Lock()
					acked = append(acked, v)
					mu.Unlock()
				}
			}
		}()
		time.Sleep(time.Duration(200+rand.IntN(1300)) * time.Millisecond)
		st := e.inspect(id).State
		switch end {
		case "kill-qemu":
			_ = syscall.Kill(st.QEMUPID, syscall.SIGKILL)
		case "kill-monitor":
			_ = syscall.Kill(st.MonitorPID, syscall.SIGKILL)
		case "nos-kill":
			e.nos("kill", id)
		case "stop":
			e.nos("stop", "-t", "10", id)
		}
		waitFor(t, "the instance to end", time.Minute, func() bool { return !e.inspect(id).MonitorAlive })
		close(stop)
		wg.Wait()
		if r := e.nos("rm", "-f", id); r.code != 0 {
			t.Fatalf("rm: %v", r)
		}
	}
	mu.Lock()
	n := len(acked)
	mu.Unlock()
	if n < len(ends) {
		t.Fatalf("only %d records acknowledged in %d rounds: the test proved little", n, len(ends))
	}
	port := freePort(t)
	id := e.runDetached("-p", fmt.Sprintf("127.0.0.1:%d:8080", port), "-v", "kvdata:/var/kv", "kv", "kv", "/var/kv")
	check(len(ends), fmt.Sprintf("http://127.0.0.1:%d", port))
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	disk := filepath.Join(home.Layout{Root: e.home}.Volumes(), "kvdata", "disk.ext4")
	if out, err := exec.Command("e2fsck", "-fn", disk).CombinedOutput(); err != nil {
		t.Fatalf("e2fsck -fn after a clean stop: %v\n%s", err, out)
	}
	t.Logf("%d acknowledged records survived %d rounds", n, len(ends))
}

// TestVolumeCopyUpOwnersAndOneWriter: a new volume over a path that holds
// files in the image starts with them; a new volume for a non-root app is
// the app's to write; a volume written by a running instance cannot be
// mounted by another, nor removed; it outlives the instance.
func TestVolumeCopyUpOwnersAndOneWriter(t *testing.T) {
	t.Parallel()
	e := volumeEnv(t)

	// Copy-up: the image's /data (added at build) shows in the new volume.
	id := e.runDetached("-v", "seeded:/data", "kv", "files", "/data", "new.txt")
	e.waitApp(id, 1)
	logs := e.logs(id)
	if !strings.Contains(logs, "file /data/pyapp ") || !strings.Contains(logs, "wrote new.txt") {
		t.Fatalf("copy-up: the volume lacks the image's files or is not writable:\n%s", logs)
	}
	// One writer: a second instance may not mount it, read-write or not,
	// and the volume cannot be removed while it is in use.
	for _, spec := range []string{"seeded:/data", "seeded:/data:ro"} {
		r := e.nos("run", "-d", "--accel", accel, "-v", spec, "kv", "files", "/data", "x")
		if r.code == 0 {
			e.nos("rm", "-f", strings.TrimSpace(r.stdout))
			t.Fatalf("a second instance mounted %s while %s writes it", spec, id[:12])
		}
		if !strings.Contains(r.stderr, id[:12]) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("-v %s while in use: want one line naming %s, got %q", spec, id[:12], r.stderr)
		}
	}
	if r := e.nos("volume", "rm", "-f", "seeded"); r.code == 0 || !strings.Contains(r.stderr, "in use") {
		t.Errorf("volume rm of a volume in use: %v", r)
	}
	e.nos("stop", id)
	if r := e.nos("volume", "rm", "seeded"); r.code == 0 {
		t.Errorf("volume rm of a volume a stopped instance names (without -f): %v", r)
	}
	e.nos("rm", id)
	// It outlives the instance: a new one sees what the first wrote.
	id = e.runDetached("-v", "seeded:/data:ro", "kv", "files", "/data", "ro.txt")
	e.waitApp(id, 1)
	if logs := e.logs(id); !strings.Contains(logs, "file /data/new.txt") || !strings.Contains(logs, "read-only file system") {
		t.Errorf("after nos rm, a new read-only instance: want new.txt there and the write refused:\n%s", logs)
	}
	e.nos("rm", "-f", id)

	// A new volume for a non-root app where the image has no such path.
	id = e.runDetached("-u", "65534:65534", "-v", "mine:/home/app", "kv", "files", "/home/app", "mine.txt")
	e.waitApp(id, 1)
	if logs := e.logs(id); !strings.Contains(logs, "file /home/app 65534:65534") || !strings.Contains(logs, "wrote mine.txt") {
		t.Errorf("a non-root app's new volume:\n%s", logs)
	}
	e.nos("stop", id) // graceful: the guest unmounts it, so it is clean
	e.nos("rm", id)
	r := e.nos("volume", "inspect", "mine")
	if r.code != 0 || !strings.Contains(r.stdout, `"Clean": true`) || !strings.Contains(r.stdout, `"SizeOnDisk"`) {
		t.Errorf("volume inspect after a clean stop: %v", r)
	}
	if r := e.nos("system", "prune", "--volumes"); r.code != 0 || !strings.Contains(r.stdout, "Removed volume mine") || !strings.Contains(r.stdout, "Removed volume seeded") {
		t.Errorf("system prune --volumes: %v", r)
	}
}

// TestVolumeBadInput: each mistake is one line, a non-zero exit, and no
// volume made or lost.
func TestVolumeBadInput(t *testing.T) {
	t.Parallel()
	e := volumeEnv(t)
	e.withBuiltKernel() // the net kernel, without blk, for the image that cannot mount volumes
	if r := e.nos("volume", "create", "--size", "64m", "keep"); r.code != 0 {
		t.Fatalf("create: %v", r)
	}
	if r := e.nos("build", "-t", "nonblk", "./e2e/testdata/probe"); r.code != 0 {
		t.Fatalf("build: %v", r)
	}
	notExt4 := filepath.Join(home.Layout{Root: e.home}.Volumes(), "fake")
	os.MkdirAll(notExt4, 0o700)
	os.WriteFile(filepath.Join(notExt4, "disk.ext4"), make([]byte, 8<<20), 0o600)
	os.WriteFile(filepath.Join(notExt4, "volume.json"), []byte(`{"name":"fake","size":8388608,"clean":true}`), 0o600)
	before := e.nos("volume", "ls").stdout
	for _, args := range [][]string{
		{"volume", "create", "--size", "1x", "v1"},
		{"volume", "create", "--size", "1m", "v1"},
		{"volume", "create", "keep"},
		{"volume", "create", "bad/name"},
		{"volume", "create", "--from", "/nonexistent", "v2"},
		{"volume", "rm", "nosuch"},
		{"run", "--accel", accel, "-v", "./rel:/data", "kv", "exit", "0"},
		{"run", "--accel", accel, "-v", "/nonexistent/dir:/data", "kv", "exit", "0"},
		{"run", "--accel", accel, "-v", "/etc/hostname:/data", "kv", "exit", "0"},
		{"run", "--accel", accel, "-v", "rel/dir:/data", "kv", "exit", "0"},
		{"run", "--accel", accel, "-v", e.home + ":/data", "nonblk", "exit", "0"},
		{"run", "--accel", accel, "-v", "keep:/data:rw:ro", "kv", "exit", "0"},
		{"run", "--accel", accel, "-v", "keep:data", "kv", "exit", "0"},
		{"run", "--accel", accel, "-v", "keep:/a", "-v", "keep:/b", "kv", "exit", "0"},
		{"run", "--accel", accel, "--mount", "type=bind,source=rel,target=/data", "kv", "exit", "0"},
		{"run", "--accel", accel, "--mount", "type=bind,source=/nonexistent,target=/data", "kv", "exit", "0"},
		{"run", "--accel", accel, "--mount", "type=volume,source=keep,target=/data,bogus=1", "kv", "exit", "0"},
		append(append([]string{"run", "--accel", accel}, seventeenVolumes()...), "kv", "exit", "0"),
		{"run", "--accel", accel, "-v", "keep:/data", "nonblk", "exit", "0"},
	} {
		r := e.nos(args...)
		if r.code == 0 || !strings.HasPrefix(r.stderr, "nos: ") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("nos %s: want one `nos: ` line and a failure, got %v", strings.Join(args, " "), r)
		}
	}
	if after := e.nos("volume", "ls").stdout; after != before {
		t.Errorf("bad input changed the volumes:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	// A file that is not ext4 placed as a volume is refused before the VM
	// boots, with the reason; the instance stays, crashed, as docker's would.
	r := e.nos("run", "-d", "--accel", accel, "--name", "onfake", "-v", "fake:/data", "kv", "exit", "0")
	if r.code == 0 || !strings.Contains(r.stderr, "not an ext4") {
		t.Errorf("a non-ext4 volume: %v", r)
	}
	t.Cleanup(func() { e.nos("rm", "-f", "onfake") })
	if r := e.nos("ps", "-a", "--format", "{{.Names}} {{.Mounts}} {{.Status}}"); r.code != 0 || !strings.Contains(r.stdout, "onfake fake:/data Crashed (setup failed)") {
		t.Errorf("ps --format {{.Mounts}}: %v", r)
	}
	r = e.nos("inspect", "--format", "{{range .Mounts}}{{.Type}} {{.Name}} {{.Destination}} {{.Mode}} {{.Source}}{{end}}", "onfake")
	if want := "volume fake /data rw " + filepath.Join(home.Layout{Root: e.home}.Volumes(), "fake", "disk.ext4"); r.code != 0 || strings.TrimSpace(r.stdout) != want {
		t.Errorf("inspect's mounts: %v, want %q", r, want)
	}
}

// TestRedisOnVolumeKeepsAcknowledgedKeys: Debian's redis-server with
// --appendonly yes --appendfsync always on a volume; every key a SET
// acknowledged before QEMU is killed is there after a new instance starts
// on the same volume.
func TestRedisOnVolumeKeepsAcknowledgedKeys(t *testing.T) {
	t.Parallel()
	needProgram(t, "redis-server")
	cli := needProgram(t, "redis-cli")
	needProgram(t, "mkfs.erofs")
	e := newEnv(t)
	e.withBlkKernel()
	// The mount point, in the image as redis's user owns it: a new volume
	// takes its owner (copy-up), so redis can write there.
	mnt := t.TempDir()
	if err := os.Chown(mnt, 65534, 65534); err != nil && os.Geteuid() == 0 {
		t.Fatal(err)
	}
	os.Chmod(mnt, 0o755)
	e.buildTree("-t", "redis", "--user", "65534", "--port", "6379", "--add", mnt+":/data",
		"--entrypoint", `["/usr/bin/redis-server","--port","6379","--protected-mode","no","--save","","--dir","/data","--appendonly","yes","--appendfsync","always"]`, "redis-server")

	var acked []string
	for round := 0; round < 2; round++ {
		port := strconv.Itoa(freePort(t))
		id := e.runDetached("-p", "127.0.0.1:"+port+":6379", "-v", "rdata:/data", "redis")
		e.waitCommand(id, "PONG", 2*time.Minute, cli, "-h", "127.0.0.1", "-p", port, "PING")
		for _, k := range acked {
			if out, err := command(t, 10*time.Second, cli, "-h", "127.0.0.1", "-p", port, "GET", k); err != nil || strings.TrimSpace(out) != "v-"+k {
				e.dump(id)
				t.Fatalf("round %d: the acknowledged key %s is lost: %v %q", round, k, err, out)
			}
		}
		for i := 0; i < 50; i++ {
			k := fmt.Sprintf("k%d-%d", round, i)
			if out, err := command(t, 10*time.Second, cli, "-h", "127.0.0.1", "-p", port, "SET", k, "v-"+k); err == nil && strings.TrimSpace(out) == "OK" {
				acked = append(acked, k)
			}
		}
		_ = syscall.Kill(e.inspect(id).State.QEMUPID, syscall.SIGKILL)
		waitFor(t, "the instance to end", time.Minute, func() bool { return !e.inspect(id).MonitorAlive })
		e.nos("rm", "-f", id)
	}
	if len(acked) < 50 {
		t.Fatalf("only %d SETs acknowledged", len(acked))
	}
	port := strconv.Itoa(freePort(t))
	id := e.runDetached("-p", "127.0.0.1:"+port+":6379", "-v", "rdata:/data", "redis")
	e.waitCommand(id, "PONG", 2*time.Minute, cli, "-h", "127.0.0.1", "-p", port, "PING")
	out, err := command(t, 10*time.Second, cli, "-h", "127.0.0.1", "-p", port, "DBSIZE")
	if err != nil || strings.TrimSpace(out) != strconv.Itoa(len(acked)) {
		t.Fatalf("DBSIZE %q (%v), want the %d acknowledged keys", out, err, len(acked))
	}
}

// seventeenVolumes are one more -v than a machine mounts (instance.MaxVolumes).
func seventeenVolumes() []string {
	var args []string
	for i := range 17 {
		args = append(args, "-v", fmt.Sprintf("many%d:/m%d", i, i))
	}
	return args
}

// TestEtcdOnVolumeKeepsItsKeys is the new user's case from issue 10:
// Debian's etcd, which dies at once when its data goes to RAM, runs with
// its data directory on a volume, and a key it stored is there after the
// instance is stopped, removed and run again.
func TestEtcdOnVolumeKeepsItsKeys(t *testing.T) {
	t.Parallel()
	etcd := needProgram(t, "etcd")
	e := newEnv(t)
	e.withBlkKernel()
	e.buildTree("-t", "etcd", "--port", "2379", "--arg=--data-dir=/var/lib/etcd",
		"--arg=--listen-client-urls=http://0.0.0.0:2379", "--arg=--advertise-client-urls=http://127.0.0.1:2379", etcd)
	client := &http.Client{Timeout: 10 * time.Second}
	post := func(url, body string) (string, error) {
		resp, err := client.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return string(b), err
	}
	start := func() (string, string) {
		port := freePort(t)
		id := e.runDetached("-m", "512m", "-p", fmt.Sprintf("127.0.0.1:%d:2379", port), "-v", "etcd:/var/lib/etcd", "etcd")
		base := fmt.Sprintf("http://127.0.0.1:%d", port)
		waitHTTP(t, nil, base+"/health", 3*time.Minute)
		return id, base
	}
	id, base := start()
	// v3's JSON gateway: key "foo" and value "bar", base64.
	if out, err := post(base+"/v3/kv/put", `{"key":"Zm9v","value":"YmFy"}`); err != nil || !strings.Contains(out, `"revision"`) {
		e.dump(id)
		t.Fatalf("put: %v %q", err, out)
	}
	if r := e.nos("stop", id); r.code != 0 {
		t.Fatalf("stop: %v", r)
	}
	e.nos("rm", id)
	id, base = start()
	if out, err := post(base+"/v3/kv/range", `{"key":"Zm9v"}`); err != nil || !strings.Contains(out, `"value":"YmFy"`) {
		e.dump(id)
		t.Fatalf("after rm and a new run, range: %v %q", err, out)
	}
}
