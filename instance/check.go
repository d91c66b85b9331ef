package instance

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/nosproject/nos/internal/lockfile"
)

// Problem is something Check found wrong among the instances.
type Problem struct {
	Path, Detail string
	// Leftover: an interrupted create's directory (no config.json),
	// which nos system prune removes, rather than damage.
	Leftover bool
	// Repaired says what repair did, "" when not asked or not possible.
	Repaired string
}

// Check reads every instance's files under the instances' lock: its
// config.json (and state.json, when there is one) must parse. A
// directory without config.json is an interrupted create. With repair it
// removes both kinds that no live monitor holds (an instance whose
// config cannot be read cannot be run, and blocks nos system prune).
func (is *Instances) Check(ctx context.Context, repair bool) ([]Problem, error) {
	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ents, err := os.ReadDir(is.Dir)
	if err != nil {
		return nil, err
	}
	var ps []Problem
	for _, e := range ents {
		if !e.IsDir() || !isID(e.Name()) {
			continue
		}
		dir := is.dir(e.Name())
		_, err := is.read(e.Name())
		var p Problem
		switch {
		case err == nil:
			continue
		case errors.Is(err, ErrNotFound):
			p = Problem{Path: dir, Detail: "no config.json: an interrupted create", Leftover: true}
		default:
			p = Problem{Path: dir, Detail: err.Error()}
		}
		switch {
		case lockfile.Held(filepath.Join(dir, monitorLock)):
			p.Detail += " (its monitor runs: not repaired)"
		case repair:
			if err := os.RemoveAll(dir); err != nil {
				p.Repaired = "removing it failed: " + err.Error()
			} else {
				p.Repaired = "removed"
			}
		}
		ps = append(ps, p)
	}
	return ps, nil
}
