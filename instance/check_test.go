package instance

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nosproject/nos/internal/home"
)

// TestCheck: a sound instance passes; an interrupted create (no config)
// is a leftover and an unreadable config is damage; repair removes both.
func TestCheck(t *testing.T) {
	is, err := Open(home.Layout{Root: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	good, half, torn := "a"+repeat("0", 63), "b"+repeat("0", 63), "c"+repeat("0", 63)
	for _, id := range []string{good, half, torn} {
		if err := os.MkdirAll(is.dir(id), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	if err := writeJSON(filepath.Join(is.dir(good), configFile), Config{ID: good, Created: time.Unix(1, 0)}); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(is.dir(torn), configFile), []byte(`{"id":`), 0o600); err != nil {
		t.Fatal(err)
	}
	ps, err := is.Check(context.Background(), false)
	if err != nil || len(ps) != 2 || !ps[0].Leftover || ps[1].Leftover {
		t.Fatalf("check: %+v, %v; want the leftover, then the damage", ps, err)
	}
	if ps, err = is.Check(context.Background(), true); err != nil || len(ps) != 2 || ps[0].Repaired != "removed" || ps[1].Repaired != "removed" {
		t.Fatalf("repair: %+v, %v", ps, err)
	}
	if ps, err := is.Check(context.Background(), false); err != nil || len(ps) != 0 {
		t.Errorf("after repair: %+v, %v", ps, err)
	}
	if _, err := is.Get(good); err != nil {
		t.Errorf("the sound instance: %v", err)
	}
}
