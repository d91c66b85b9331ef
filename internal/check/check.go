// Package check holds what nos system check reports: one Problem type
// for the store, the volumes and the instances.
package check

import (
	"os"
	"strings"
)

// Problem is one thing a check found.
type Problem struct {
	Kind   string // what it is, e.g. "corrupt blob", "torn volume"
	Path   string // the file or directory concerned
	Detail string
	// Leftover: what an interrupted operation normally leaves and nos
	// system prune removes, rather than damage.
	Leftover bool
	// Repaired says what repair did about it; "" when repair was not
	// asked or was not possible.
	Repaired string
}

// Remove removes path, recording the outcome as the repair.
func (p *Problem) Remove(path string) {
	if err := os.RemoveAll(path); err != nil {
		p.Repaired = removeFailed + err.Error()
		return
	}
	p.Repaired = "removed"
}

// Fixed reports whether repair dealt with it.
func (p Problem) Fixed() bool {
	return p.Repaired != "" && !strings.HasPrefix(p.Repaired, removeFailed)
}

const removeFailed = "removing it failed: "
