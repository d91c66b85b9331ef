package ociruntime

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"github.com/spf13/pflag"
)

// ps lists the container's host processes: the supervisor and its
// descendants (QEMU, virtiofsd and its helper). The guest's own
// processes run in the VM's kernel and have no host pids.

func cmdPs(st store, args []string, stdout io.Writer) error {
	fs := pflag.NewFlagSet("ps", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SetInterspersed(false)
	format := fs.StringP("format", "f", "table", "table or json")
	if err := fs.Parse(normalizeLong(args, "format")); err != nil {
		return usageError{"ps: " + err.Error()}
	}
	if *format != "table" && *format != "json" {
		return usageError{fmt.Sprintf("ps: --format %q: want table or json", *format)}
	}
	if fs.NArg() < 1 {
		return usageError{"ps takes a container id"}
	}
	id := fs.Arg(0)
	if err := checkID(id); err != nil {
		return err
	}
	r, err := st.read(id)
	if err != nil {
		return err
	}
	pids := []int{}
	if s := r.current(); s == specs.StateCreated || s == specs.StateRunning {
		pids = processTree(r.Pid, readParents("/proc"))
	}
	if *format == "json" {
		b, _ := json.Marshal(pids)
		_, err := fmt.Fprintf(stdout, "%s\n", b)
		return err
	}
	fmt.Fprintf(stdout, "%-8s %-8s %s\n", "PID", "PPID", "CMD")
	parents := readParents("/proc")
	for _, p := range pids {
		fmt.Fprintf(stdout, "%-8d %-8d %s\n", p, parents[p], cmdline(p))
	}
	return nil
}

// processTree is root and its descendants, root first then by pid, given
// every process's parent; nil when root is not a process.
func processTree(root int, parent map[int]int) []int {
	if _, ok := parent[root]; !ok {
		return nil
	}
	children := map[int][]int{}
	for p, pp := range parent {
		children[pp] = append(children[pp], p)
	}
	out := []int{root}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	slices.Sort(out[1:])
	return out
}

// readParents maps each process in the proc directory to its parent.
func readParents(proc string) map[int]int {
	ents, _ := os.ReadDir(proc)
	m := map[int]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "stat"))
		if err != nil {
			continue
		}
		if pp, ok := statParent(b); ok {
			m[pid] = pp
		}
	}
	return m
}

// statParent reads the parent pid from /proc/PID/stat: the fourth field,
// counted after the command's closing parenthesis (the command may hold
// spaces and parentheses).
func statParent(stat []byte) (int, bool) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(stat[i+1:]))
	if len(f) < 2 {
		return 0, false
	}
	pp, err := strconv.Atoi(f[1])
	return pp, err == nil
}

func cmdline(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
}
