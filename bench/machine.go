package main

import (
	"context"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
)

// machine describes where the figures were measured.
type machine struct {
	CPU         string `json:"cpu"`
	Cores       int    `json:"cores"`
	MemoryBytes int64  `json:"memory_bytes"`
	OS          string `json:"os"`
	HostKernel  string `json:"host_kernel"`
	QEMU        string `json:"qemu"`
	Accel       string `json:"accelerator"`
	Go          string `json:"go"`
	GuestKernel string `json:"guest_kernel"`
	GuestCmd    string `json:"guest_cmdline"`
	GuestMemMiB int    `json:"guest_memory_mib"`
	GuestCPUs   int    `json:"guest_cpus"`
	Source      string `json:"source"`
	// LoadStart and LoadEnd are /proc/loadavg's 1, 5 and 15 minute
	// averages before and after the measurements.
	LoadStart string `json:"load_start"`
	LoadEnd   string `json:"load_end"`
}

// hostInfo reads what the host says about itself. What the benchmark
// cannot do without (CPU, memory, QEMU, Go) is an error; the OS name and
// the source revision are informative only.
func (h *harness) hostInfo(ctx context.Context) (machine, error) {
	m := machine{Cores: runtime.NumCPU(), Accel: h.accel, LoadStart: loadAvg()}
	var err error
	if m.CPU, err = cpuModel(); err != nil {
		return m, err
	}
	if m.MemoryBytes, err = memTotal(); err != nil {
		return m, err
	}
	if m.HostKernel, err = readTrim("/proc/sys/kernel/osrelease"); err != nil {
		return m, err
	}
	out, err := output(ctx, "", nil, "qemu-system-x86_64", "--version")
	if err != nil {
		return m, err
	}
	m.QEMU = firstLine(out)
	out, err = output(ctx, h.root, nil, "go", "env", "GOVERSION")
	if err != nil {
		return m, err
	}
	m.Go = strings.TrimSpace(out)
	m.OS = osName()
	m.Source = h.sourceRevision(ctx)
	return m, nil
}

func cpuModel() (string, error) {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "", err
	}
	return parseCPUModel(string(b))
}

func parseCPUModel(cpuinfo string) (string, error) {
	for _, line := range strings.Split(cpuinfo, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v), nil
		}
	}
	return "", fmt.Errorf("no model name in /proc/cpuinfo")
}

func memTotal() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	return parseMemTotal(string(b))
}

func parseMemTotal(meminfo string) (int64, error) {
	for _, line := range strings.Split(meminfo, "\n") {
		v, ok := strings.CutPrefix(line, "MemTotal:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if n, err := strconv.ParseInt(f[0], 10, 64); err == nil && n > 0 {
				return n * 1024, nil
			}
		}
		return 0, fmt.Errorf("unexpected MemTotal line %q", line)
	}
	return 0, fmt.Errorf("no MemTotal in /proc/meminfo")
}

func osName() string {
	b, err := os.ReadFile("/etc/os-release")
	if err != nil {
		return runtime.GOOS
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PRETTY_NAME="); ok {
			return strings.Trim(v, `"`)
		}
	}
	return runtime.GOOS
}

// sourceRevision is the git commit of the tree, with "+changes" when the
// working tree differs from it, or "unknown".
func (h *harness) sourceRevision(ctx context.Context) string {
	rev, err := output(ctx, h.root, nil, "git", "rev-parse", "--short", "HEAD")
	if err != nil {
		return "unknown"
	}
	rev = strings.TrimSpace(rev)
	if st, err := output(ctx, h.root, nil, "git", "status", "--porcelain"); err == nil && strings.TrimSpace(st) != "" {
		rev += " + uncommitted changes"
	}
	return rev
}

func loadAvg() string {
	s, err := readTrim("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(s)
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

func readTrim(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
