package jail

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Root is where cgroup file systems are mounted.
const Root = "/sys/fs/cgroup"

// cpuPeriod is the CFS period the CPU limit is expressed in (100 ms, as
// docker's --cpus).
const cpuPeriod = 100000

// Cgroup is one process's cgroup: a directory in the v2 tree, or one in
// each of the v1 memory and cpu hierarchies.
type Cgroup struct {
	// Dirs are the cgroup's directories; the v2 one, or the v1 ones.
	Dirs []string
	// Rel is its path relative to the hierarchy root, as /proc/PID/cgroup
	// shows it.
	Rel string
	v2  bool
}

// Limits of a cgroup.
type Limits struct {
	MemoryBytes int64   // 0: no limit
	CPUs        float64 // 0: no limit
}

// NewCgroup creates (or reuses, when a crashed run left it) the cgroup
// name under the calling process's own cgroup and sets its limits.
func NewCgroup(name string, l Limits) (*Cgroup, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") || name == "." || name == ".." {
		return nil, fmt.Errorf("cgroup name %q: want one path element", name)
	}
	self, err := selfCgroups()
	if err != nil {
		return nil, err
	}
	if isV2() {
		return newV2(self[""], name, l)
	}
	return newV1(self, name, l)
}

// isV2 reports whether the unified hierarchy is mounted at Root.
func isV2() bool {
	_, err := os.Stat(filepath.Join(Root, "cgroup.controllers"))
	return err == nil
}

// selfCgroups maps each v1 controller (and "" for v2) to the calling
// process's cgroup path.
func selfCgroups() (map[string]string, error) {
	f, err := os.Open("/proc/self/cgroup")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	m := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 {
			continue
		}
		if parts[1] == "" {
			m[""] = parts[2]
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			m[c] = parts[2]
		}
	}
	return m, sc.Err()
}

func newV2(self, name string, l Limits) (*Cgroup, error) {
	parent := filepath.Join(Root, self)
	// Controllers must be enabled in the parent for the child to have
	// them; the parent may not hold processes then (cgroup v2's
	// no-internal-process rule), which a shell's or a service's cgroup
	// usually does.
	if err := os.WriteFile(filepath.Join(parent, "cgroup.subtree_control"), []byte("+memory +cpu"), 0o644); err != nil {
		return nil, fmt.Errorf("cgroup v2: enabling the memory and cpu controllers under %s: %w", parent, err)
	}
	dir := filepath.Join(parent, name)
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
		return nil, fmt.Errorf("cgroup v2: %w", err)
	}
	cg := &Cgroup{Dirs: []string{dir}, Rel: filepath.Join(self, name), v2: true}
	if l.MemoryBytes > 0 {
		if err := write(dir, "memory.max", strconv.FormatInt(l.MemoryBytes, 10)); err != nil {
			cg.Remove()
			return nil, err
		}
	}
	if l.CPUs > 0 {
		if err := write(dir, "cpu.max", fmt.Sprintf("%d %d", int(l.CPUs*cpuPeriod), cpuPeriod)); err != nil {
			cg.Remove()
			return nil, err
		}
	}
	return cg, nil
}

func newV1(self map[string]string, name string, l Limits) (*Cgroup, error) {
	cg := &Cgroup{}
	for _, c := range []string{"memory", "cpu"} {
		rel, ok := self[c]
		if !ok {
			return nil, fmt.Errorf("cgroup v1: no %s hierarchy in /proc/self/cgroup", c)
		}
		dir := filepath.Join(Root, c, rel, name)
		if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, os.ErrExist) {
			cg.Remove()
			return nil, fmt.Errorf("cgroup v1: %w", err)
		}
		cg.Dirs = append(cg.Dirs, dir)
		var err error
		switch {
		case c == "memory" && l.MemoryBytes > 0:
			// Charges move with the process: what QEMU touched before it
			// was attached counts too.
			_ = write(dir, "memory.move_charge_at_immigrate", "3")
			err = write(dir, "memory.limit_in_bytes", strconv.FormatInt(l.MemoryBytes, 10))
		case c == "cpu" && l.CPUs > 0:
			if err = write(dir, "cpu.cfs_period_us", strconv.Itoa(cpuPeriod)); err == nil {
				err = write(dir, "cpu.cfs_quota_us", strconv.Itoa(int(l.CPUs*cpuPeriod)))
			}
		}
		if err != nil {
			cg.Remove()
			return nil, err
		}
		if c == "memory" {
			cg.Rel = filepath.Join(rel, name) // the one Confined reports
		}
	}
	return cg, nil
}

// Attach moves the process pid into the cgroup.
func (c *Cgroup) Attach(pid int) error {
	for _, d := range c.Dirs {
		if err := write(d, "cgroup.procs", strconv.Itoa(pid)); err != nil {
			return err
		}
	}
	return nil
}

// FD opens the v2 cgroup's directory, for starting a process right in it
// (SysProcAttr.UseCgroupFD); nil on v1, where Attach moves it after start.
func (c *Cgroup) FD() (*os.File, error) {
	if !c.v2 {
		return nil, nil
	}
	return os.Open(c.Dirs[0])
}

// Remove deletes the cgroup; it must hold no process any more.
func (c *Cgroup) Remove() error {
	var first error
	for _, d := range c.Dirs {
		if err := os.Remove(d); err != nil && !errors.Is(err, os.ErrNotExist) && first == nil {
			first = err
		}
	}
	return first
}

func write(dir, file, value string) error {
	if err := os.WriteFile(filepath.Join(dir, file), []byte(value), 0o644); err != nil {
		return fmt.Errorf("cgroup %s: %w", file, err)
	}
	return nil
}
