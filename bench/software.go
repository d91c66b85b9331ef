package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"text/tabwriter"
	"time"
)

// -software measures programs nobody here wrote, packaged by nos from the
// host's Debian packages (nginx, redis), next to the same programs run
// natively on the host: image size, time from `nos run -d` to the first
// answer, and throughput and latency with real clients.

type softwareReport struct {
	Date     time.Time        `json:"date"`
	Runs     int              `json:"runs"`
	Machine  machine          `json:"machine"`
	Kernel   string           `json:"kernel"`
	Programs []programFigures `json:"programs"`
}

type programFigures struct {
	Name       string  `json:"name"`
	ImageBytes int64   `json:"image_bytes"`
	RootDisk   int64   `json:"root_disk_bytes"`
	FirstReply summary `json:"run_to_first_reply_ms"`
	// Load is the client's figures against the nos instance and against
	// the program run natively on the host.
	NosLoad    load   `json:"nos"`
	NativeLoad load   `json:"native"`
	Client     string `json:"client"`
}

type load struct {
	RPS  map[string]float64 `json:"requests_per_second"`
	P50  float64            `json:"p50_ms,omitempty"`
	P99  float64            `json:"p99_ms,omitempty"`
	Note string             `json:"note,omitempty"`
}

// A program under test: how to build it, run it natively and load it.
type program struct {
	name      string
	guestPort int
	build     func(dir string) []string // nos build flags and source
	native    func(ctx context.Context, dir string, port int) (*exec.Cmd, error)
	ready     func(ctx context.Context, port int) bool
	load      func(ctx context.Context, port int) (load, error)
	client    string
}

func runSoftware(ctx context.Context, o options) (err error) {
	h, err := newHarness(ctx, o)
	if err != nil {
		return err
	}
	defer h.close()
	kpath, klabel, err := rootDiskKernel("-software")
	if err != nil {
		return err
	}
	rep := &softwareReport{Date: time.Now().UTC(), Runs: o.runs, Kernel: klabel}
	if rep.Machine, err = h.hostInfo(ctx); err != nil {
		return err
	}
	// Natively, nginx's workers run as nobody: they must be able to reach
	// the pages, under the benchmark's private (0700) directory.
	work := filepath.Join(h.tmp, "software")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(h.tmp, 0o755); err != nil {
		return err
	}
	f := newFleet(h)
	defer func() {
		if cerr := f.Cleanup(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	for _, p := range []program{nginxProgram(), redisProgram()} {
		dir := filepath.Join(work, p.name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		fig, err := h.measureProgram(ctx, f, p, dir, kpath)
		if err != nil {
			return fmt.Errorf("%s: %w", p.name, err)
		}
		rep.Programs = append(rep.Programs, fig)
	}
	rep.Machine.LoadEnd = loadAvg()
	if err := f.Cleanup(); err != nil {
		return err
	}
	if o.json {
		return writeJSON(os.Stdout, rep)
	}
	return writeSoftware(os.Stdout, rep)
}

// rootDiskKernel is nos's built kernel with block devices, which the
// root-disk images of Debian's software boot on: its path and a label.
func rootDiskKernel(mode string) (path, label string, err error) {
	e, err := builtKernel([]string{"blk", "net"})
	if err != nil {
		return "", "", fmt.Errorf("%s boots root-disk images on nos's kernel with block devices: %w (run `make test-deps`)", mode, err)
	}
	path = e.VmlinuxPath()
	if path == "" {
		path = e.Path()
	}
	return path, e.Version + " " + e.ShortID() + " (" + strings.Join(e.Features, ",") + ")", nil
}

func (h *harness) measureProgram(ctx context.Context, f *fleet, p program, dir, kpath string) (programFigures, error) {
	fig := programFigures{Name: p.name, Client: p.client}
	args := append([]string{"build", "--kernel", kpath, "-t", p.name}, p.build(dir)...)
	if _, err := h.runNos(ctx, args...); err != nil {
		return fig, err
	}
	im, err := h.inspect(ctx, p.name)
	if err != nil {
		return fig, err
	}
	fig.ImageBytes = im.Size
	for _, l := range im.Manifest.Layers {
		if strings.Contains(l.MediaType, "rootfs") {
			fig.RootDisk = l.Size
		}
	}
	var firsts []time.Duration
	var port int
	for i := range h.opts.runs {
		var id string
		var d time.Duration
		if port, id, d, err = h.startProgram(ctx, f, p, i, nil); err != nil {
			return fig, err
		}
		firsts = append(firsts, d)
		progress("%s run %d/%d: first reply after %v", p.name, i+1, h.opts.runs, d.Round(time.Millisecond))
		if i < h.opts.runs-1 {
			if err := f.remove(ctx, &inst{id: id}, true); err != nil {
				return fig, err
			}
		}
	}
	if fig.FirstReply, err = summarizeDurations(firsts); err != nil {
		return fig, err
	}
	// The last instance stays up for the load run.
	progress("%s: load on the nos instance", p.name)
	if fig.NosLoad, err = p.load(ctx, port); err != nil {
		return fig, fmt.Errorf("load on the nos instance: %w", err)
	}
	nport, err := freePort()
	if err != nil {
		return fig, err
	}
	cmd, err := p.native(ctx, dir, nport)
	if err != nil {
		return fig, fmt.Errorf("starting it natively: %w", err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	deadline := time.Now().Add(30 * time.Second)
	for !p.ready(ctx, nport) {
		if time.Now().After(deadline) {
			return fig, errors.New("the native program did not answer within 30 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	progress("%s: load on the native program", p.name)
	if fig.NativeLoad, err = p.load(ctx, nport); err != nil {
		return fig, fmt.Errorf("load on the native program: %w", err)
	}
	return fig, nil
}

// startProgram runs the image detached on a free loopback port and waits
// for its first reply, timed from just before the exec of nos run -d.
// env is added to nos's environment.
func (h *harness) startProgram(ctx context.Context, f *fleet, p program, i int, env []string) (int, string, time.Duration, error) {
	port, err := freePort()
	if err != nil {
		return 0, "", 0, err
	}
	start := time.Now()
	out, err := output(ctx, h.root, append(slices.Clone(h.env), env...), h.nos, "run", "-d", "--accel", h.accel, "--name", fmt.Sprintf("%s-%d", p.name, i), "-p", fmt.Sprintf("127.0.0.1:%d:%d", port, p.guestPort), p.name)
	if err != nil {
		return 0, "", 0, err
	}
	id := strings.TrimSpace(out)
	f.track(id)
	deadline := start.Add(bootTimeout)
	for !p.ready(ctx, port) {
		if err := ctx.Err(); err != nil {
			return 0, "", 0, err
		}
		if time.Now().After(deadline) {
			logs, _ := h.runNos(ctx, "logs", "--tail", "20", id)
			return 0, "", 0, fmt.Errorf("no reply within %v; its output:\n%s", bootTimeout, logs)
		}
		time.Sleep(pollInterval)
	}
	return port, id, time.Since(start), nil
}

func nginxProgram() program {
	conf := func(dir string, port int, pid string) string {
		return fmt.Sprintf(`daemon off;
worker_processes 1;
error_log stderr;
pid %s;
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path /tmp/body;
    proxy_temp_path /tmp/proxy;
    fastcgi_temp_path /tmp/fastcgi;
    uwsgi_temp_path /tmp/uwsgi;
    scgi_temp_path /tmp/scgi;
    server { listen %d; root %s; }
}
`, pid, port, filepath.Join(dir, "www"))
	}
	return program{
		name: "nginx", guestPort: 8080, client: "Go net/http, 4 keep-alive connections, 5 s",
		build: func(dir string) []string {
			os.MkdirAll(filepath.Join(dir, "www"), 0o755)
			os.WriteFile(filepath.Join(dir, "www", "index.html"), []byte("hello from nginx\n"), 0o644)
			c := strings.ReplaceAll(conf("/srv", 8080, "/tmp/nginx.pid"), filepath.Join("/srv", "www"), "/srv/www")
			os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(c), 0o644)
			return []string{"--user", "33:33", "--port", "8080",
				"--add", filepath.Join(dir, "nginx.conf") + ":/etc/nginx/nginx.conf",
				"--add", filepath.Join(dir, "www") + ":/srv/www",
				"--entrypoint", `["/usr/sbin/nginx","-e","stderr"]`, "/usr/sbin/nginx"}
		},
		native: func(ctx context.Context, dir string, port int) (*exec.Cmd, error) {
			c := filepath.Join(dir, "native.conf")
			if err := os.WriteFile(c, []byte(conf(dir, port, filepath.Join(dir, "nginx.pid"))), 0o644); err != nil {
				return nil, err
			}
			cmd := exec.CommandContext(ctx, "/usr/sbin/nginx", "-e", "stderr", "-c", c, "-p", dir)
			return cmd, cmd.Start()
		},
		ready: func(ctx context.Context, port int) bool {
			return get200(ctx, &http.Client{Timeout: time.Second}, fmt.Sprintf("http://127.0.0.1:%d/", port))
		},
		load: httpLoad,
	}
}

// httpLoad runs 4 keep-alive clients for 5 seconds and reports requests
// per second and latency percentiles.
func httpLoad(ctx context.Context, port int) (load, error) {
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	tr := &http.Transport{MaxIdleConnsPerHost: 4}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 5 * time.Second}
	var mu sync.Mutex
	var lat []float64
	var failed error
	end := time.Now().Add(5 * time.Second)
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(end) && ctx.Err() == nil {
				t0 := time.Now()
				resp, err := client.Get(url)
				if err == nil {
					_, err = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if err == nil && resp.StatusCode != 200 {
						err = fmt.Errorf("status %s", resp.Status)
					}
				}
				mu.Lock()
				if err != nil && failed == nil {
					failed = err
				}
				lat = append(lat, millis(time.Since(t0)))
				mu.Unlock()
				if err != nil {
					return
				}
			}
		}()
	}
	wg.Wait()
	if failed != nil {
		return load{}, failed
	}
	s, err := summarize(lat)
	if err != nil {
		return load{}, err
	}
	return load{RPS: map[string]float64{"GET /": round2(float64(len(lat)) / 5)}, P50: s.Median, P99: percentile(lat, 0.99)}, nil
}

func percentile(v []float64, p float64) float64 {
	sorted := slices.Sorted(slices.Values(v))
	return sorted[min(len(sorted)-1, int(p*float64(len(sorted))))]
}

func redisProgram() program {
	return program{
		name: "redis", guestPort: 6379, client: "redis-benchmark -n 20000 -c 10 -t set,get",
		build: func(string) []string {
			return []string{"--user", "65534", "--port", "6379",
				"--entrypoint", `["/usr/bin/redis-server","--port","6379","--protected-mode","no","--save",""]`, "redis-server"}
		},
		native: func(ctx context.Context, dir string, port int) (*exec.Cmd, error) {
			cmd := exec.CommandContext(ctx, "redis-server", "--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--dir", dir)
			return cmd, cmd.Start()
		},
		ready: redisPing,
		load: func(ctx context.Context, port int) (load, error) {
			cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
			defer cancel()
			out, err := exec.CommandContext(cctx, "redis-benchmark", "-h", "127.0.0.1", "-p", strconv.Itoa(port), "-n", "20000", "-c", "10", "-t", "set,get", "--csv").CombinedOutput()
			if err != nil {
				return load{}, fmt.Errorf("redis-benchmark: %v: %s", err, tailLines(string(out), 5))
			}
			return parseRedisCSV(string(out))
		},
	}
}

// redisPing reports whether a redis server answers PING with PONG.
func redisPing(ctx context.Context, port int) bool {
	d := net.Dialer{Timeout: time.Second}
	c, err := d.DialContext(ctx, "tcp", fmt.Sprintf("127.0.0.1:%d", port))
	if err != nil {
		return false
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("PING\r\n")); err != nil {
		return false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	return err == nil && strings.TrimSpace(line) == "+PONG"
}

// parseRedisCSV reads redis-benchmark --csv: a header line, then
// "TEST","rps","avg_latency_ms","min","p50","p95","p99","max".
func parseRedisCSV(out string) (load, error) {
	l := load{RPS: map[string]float64{}}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Split(strings.ReplaceAll(strings.TrimSpace(line), `"`, ""), ",")
		if len(f) < 7 || f[0] == "test" {
			continue
		}
		rps, err := strconv.ParseFloat(f[1], 64)
		if err != nil {
			continue
		}
		l.RPS[f[0]] = rps
		if f[0] == "GET" {
			l.P50, _ = strconv.ParseFloat(f[4], 64)
			l.P99, _ = strconv.ParseFloat(f[6], 64)
		}
	}
	if len(l.RPS) == 0 {
		return l, fmt.Errorf("no figures in redis-benchmark's output: %s", tailLines(out, 5))
	}
	return l, nil
}

func writeSoftware(w io.Writer, rep *softwareReport) error {
	fmt.Fprintf(w, "machine: %s, %d cores, %s, QEMU %s, accelerator %s; load %s → %s\n", rep.Machine.CPU, rep.Machine.Cores, rep.Machine.OS, rep.Machine.QEMU, rep.Machine.Accel, rep.Machine.LoadStart, rep.Machine.LoadEnd)
	fmt.Fprintf(w, "kernel %s; %d runs each; medians [min–max]\n\n", rep.Kernel, rep.Runs)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "program\timage (root disk)\trun -d → first reply\tclient\tnos: req/s, p50/p99 ms\tnative: req/s, p50/p99 ms")
	for _, p := range rep.Programs {
		fmt.Fprintf(tw, "%s\t%s (%s)\t%s [%s–%s]\t%s\t%s\t%s\n", p.Name, mib(p.ImageBytes), mib(p.RootDisk),
			ms(p.FirstReply.Median), ms(p.FirstReply.Min), ms(p.FirstReply.Max), p.Client, loadString(p.NosLoad), loadString(p.NativeLoad))
	}
	return tw.Flush()
}

func loadString(l load) string {
	var parts []string
	for _, k := range []string{"GET /", "SET", "GET"} {
		if v, ok := l.RPS[k]; ok {
			parts = append(parts, fmt.Sprintf("%s %.0f", k, v))
		}
	}
	return fmt.Sprintf("%s; %.2f/%.2f", strings.Join(parts, ", "), l.P50, l.P99)
}
