package instance

import (
	"context"
	"errors"
	"os"
	"path/filepath"

	"github.com/nosproject/nos/internal/check"
	"github.com/nosproject/nos/internal/lockfile"
)

// Check reads every instance's files under the instances' lock: its
// config.json (and state.json, when there is one) must parse. A
// directory without config.json is an interrupted create. With repair it
// removes both kinds that no live monitor holds (an instance whose
// config cannot be read cannot be run, and blocks nos system prune).
func (is *Instances) Check(ctx context.Context, repair bool) ([]check.Problem, error) {
	unlock, err := is.lockAll(ctx)
	if err != nil {
		return nil, err
	}
	defer unlock()
	ents, err := os.ReadDir(is.Dir)
	if err != nil {
		return nil, err
	}
	var ps []check.Problem
	for _, e := range ents {
		if !e.IsDir() || !isID(e.Name()) {
			continue
		}
		dir := is.dir(e.Name())
		_, err := is.read(e.Name())
		var p check.Problem
		switch {
		case err == nil:
			continue
		case errors.Is(err, ErrNotFound):
			p = check.Problem{Kind: "instance leftover", Path: dir, Detail: "no config.json: an interrupted create", Leftover: true}
		default:
			p = check.Problem{Kind: "torn instance", Path: dir, Detail: err.Error()}
		}
		switch {
		case lockfile.Held(filepath.Join(dir, monitorLock)):
			p.Detail += " (its monitor runs: not repaired)"
		case repair:
			p.Remove(dir)
		}
		ps = append(ps, p)
	}
	return ps, nil
}
