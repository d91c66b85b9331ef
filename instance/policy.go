package instance

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Restart policy names, as docker has them.
const (
	RestartNo            = "no"
	RestartOnFailure     = "on-failure"
	RestartAlways        = "always"
	RestartUnlessStopped = "unless-stopped"
)

// RestartPolicy says when the monitor boots the VM again after it ends.
// Restarts reboot the whole VM: a kernel panic or a QEMU crash is handled
// exactly like an application exit, and every run starts from a clean guest.
type RestartPolicy struct {
	Name       string `json:"name"`
	MaxRetries int    `json:"maxRetries,omitempty"` // on-failure only; 0 = unlimited
}

// ParseRestartPolicy parses --restart no|on-failure[:MAX]|always|unless-stopped.
func ParseRestartPolicy(s string) (RestartPolicy, error) {
	name, max, hasMax := strings.Cut(s, ":")
	p := RestartPolicy{Name: name}
	switch name {
	case "", RestartNo:
		p.Name = RestartNo
	case RestartAlways, RestartUnlessStopped:
	case RestartOnFailure:
		if hasMax {
			n, err := strconv.Atoi(max)
			if err != nil || n < 0 {
				return p, fmt.Errorf("--restart %q: the retry count must be a number >= 0: %w", s, ErrBadFlag)
			}
			p.MaxRetries = n
		}
		return p, nil
	default:
		return p, fmt.Errorf("--restart %q: want no, on-failure[:MAX], always or unless-stopped: %w", s, ErrBadFlag)
	}
	if hasMax {
		return p, fmt.Errorf("--restart %q: only on-failure takes a retry count: %w", s, ErrBadFlag)
	}
	return p, nil
}

// ShouldRestart decides, after a run ended, whether to boot again.
// crashed is true when the VM died without an application exit code.
func (p RestartPolicy) ShouldRestart(exitCode int, crashed, stoppedByUser bool, restarts int) bool {
	if stoppedByUser {
		return false
	}
	switch p.Name {
	case RestartAlways, RestartUnlessStopped:
		return true
	case RestartOnFailure:
		return (crashed || exitCode != 0) && (p.MaxRetries == 0 || restarts < p.MaxRetries)
	}
	return false
}

// Backoff is docker's restart delay: 100 ms doubling per consecutive
// restart, at most a minute; a run that lasted at least 10 s resets it.
func Backoff(consecutive int) time.Duration {
	d := 100 * time.Millisecond
	for i := 0; i < consecutive && d < time.Minute; i++ {
		d *= 2
	}
	return min(d, time.Minute)
}

// BackoffReset is how long a run must last for the backoff to start over.
const BackoffReset = 10 * time.Second

// HealthCheck probes the application from the host through a forwarded
// port: a TCP connect, or an HTTP GET that must answer 2xx or 3xx.
type HealthCheck struct {
	HTTPPath    string        `json:"httpPath,omitempty"`
	Port        int           `json:"port"` // guest port
	Interval    time.Duration `json:"interval"`
	Timeout     time.Duration `json:"timeout"`
	Retries     int           `json:"retries"`
	StartPeriod time.Duration `json:"startPeriod,omitempty"`
}

// Health statuses.
const (
	HealthStarting  = "starting"
	HealthHealthy   = "healthy"
	HealthUnhealthy = "unhealthy"
)

// HealthState is the latest verdict of the health check.
type HealthState struct {
	Status        string    `json:"status"`
	FailingStreak int       `json:"failingStreak"`
	LastCheck     time.Time `json:"lastCheck,omitempty"`
	LastOutput    string    `json:"lastOutput,omitempty"`
}
