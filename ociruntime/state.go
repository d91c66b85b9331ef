package ociruntime

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// Files of a container's state directory, ROOT/ID.
const (
	stateFile   = "state.json"
	planFile    = "plan.json"
	consoleFile = "console.log" // the guest's serial console
	logFile     = "supervisor.log"
	socketName  = "supervisor.sock"
)

// ErrNotExist is wrapped when a container id is unknown; its text is what
// podman and containerd look for in a runtime's error.
var ErrNotExist = errors.New("does not exist")

// record is a container's state on disk. The supervisor writes it; the
// commands read it (and create writes its first version).
type record struct {
	ID          string               `json:"id"`
	Bundle      string               `json:"bundle"`
	Status      specs.ContainerState `json:"status"`
	Pid         int                  `json:"pid,omitempty"`
	PidStart    uint64               `json:"pidStart,omitempty"` // the pid's start time (/proc/PID/stat field 22): a reused pid is not ours
	Annotations map[string]string    `json:"annotations,omitempty"`
	Created     time.Time            `json:"created"`
	Started     time.Time            `json:"started,omitzero"`
	Finished    time.Time            `json:"finished,omitzero"`
	ExitCode    *int                 `json:"exitCode,omitempty"`
}

var idPattern = regexp.MustCompile(`^[A-Za-z0-9_+\-.]+$`)

// checkID refuses ids that could name another directory: runc's rule.
func checkID(id string) error {
	if id == "" || len(id) > 1024 || !idPattern.MatchString(id) || id == "." || id == ".." {
		return fmt.Errorf("invalid container id %q: want letters, digits and _+-.", id)
	}
	return nil
}

type store struct{ root string }

func (s store) dir(id string) string { return filepath.Join(s.root, id) }

func (s store) read(id string) (*record, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(s.dir(id), stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("container %s %w", id, ErrNotExist)
	}
	if err != nil {
		return nil, err
	}
	var r record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("container %s: state: %w", id, err)
	}
	return &r, nil
}

// write replaces the record atomically.
func (s store) write(r *record) error {
	return writeJSONAtomic(filepath.Join(s.dir(r.ID), stateFile), r)
}

func writeJSONAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}

// current is the record's status as it stands now: a created or running
// container whose supervisor is gone has stopped.
func (r *record) current() specs.ContainerState {
	switch r.Status {
	case specs.StateCreated, specs.StateRunning:
		if !alive(r.Pid, r.PidStart) {
			return specs.StateStopped
		}
	case specs.StateCreating:
		if r.Pid != 0 && !alive(r.Pid, r.PidStart) {
			return specs.StateStopped
		}
	}
	return r.Status
}

// ociState is the record as `state` prints it (the spec's state, plus
// runc's created timestamp).
func (r *record) ociState() ociState {
	st := ociState{
		State: specs.State{
			Version: specs.Version, ID: r.ID, Status: r.current(), Bundle: r.Bundle, Annotations: r.Annotations,
		},
		Created: r.Created,
	}
	if st.Status == specs.StateCreated || st.Status == specs.StateRunning {
		st.Pid = r.Pid
	}
	return st
}

type ociState struct {
	specs.State
	Created time.Time `json:"created"`
}

// alive reports whether pid runs and is the process that started at
// start (0: any).
func alive(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	if err := unix.Kill(pid, 0); err != nil && !errors.Is(err, unix.EPERM) {
		return false
	}
	got, err := startTime(pid)
	if err != nil {
		return false // gone between the two looks
	}
	if isZombie(pid) {
		return false
	}
	return start == 0 || got == start
}

// startTime is /proc/PID/stat's starttime (field 22).
func startTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	return parseStartTime(string(b))
}

func parseStartTime(stat string) (uint64, error) {
	// comm (field 2) may hold spaces and parentheses: fields count from
	// the last ')'.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("malformed /proc stat")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); starttime is field 22.
	if len(f) < 20 {
		return 0, errors.New("malformed /proc stat")
	}
	return strconv.ParseUint(f[19], 10, 64)
}

func isZombie(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return true
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i >= 0 && len(s) > i+2 && (s[i+2] == 'Z' || s[i+2] == 'X')
}

// socketPath is the supervisor's socket: in the state directory when the
// path fits a unix socket's 108 bytes, else in a private directory under
// the temp dir named after it.
func socketPath(dir string) string {
	p := filepath.Join(dir, socketName)
	if len(p) < 100 {
		return p
	}
	sum := sha256.Sum256([]byte(dir))
	short := filepath.Join(os.TempDir(), "nos-runtime-"+hex.EncodeToString(sum[:8]))
	_ = os.MkdirAll(short, 0o700)
	return filepath.Join(short, socketName)
}
