package instance

import (
	"context"
	"fmt"
	"io"
	"path/filepath"

	"github.com/nosproject/nos/instance/logfile"
	"github.com/nosproject/nos/internal/lockfile"
)

// LogOptions say which of an instance's output to show.
type LogOptions struct {
	Tail       int  // last N lines; < 0 for all
	Follow     bool // keep streaming until the instance stops for good
	Timestamps bool
}

// Logs copies the application's output, stdout and stderr to their own
// writers. Logs are kept across restarts and after the instance exits.
func Logs(ctx context.Context, in *Instance, stdout, stderr io.Writer, o LogOptions) error {
	emit := func(r logfile.Record) error {
		w := stdout
		if r.Stream == "stderr" {
			w = stderr
		}
		_, err := io.WriteString(w, logfile.Format(r, o.Timestamps))
		return err
	}
	if !o.Follow {
		recs, err := logfile.Read(in.Dir, o.Tail)
		if err != nil {
			return err
		}
		for _, r := range recs {
			if err := emit(r); err != nil {
				return err
			}
		}
		return nil
	}
	lock := filepath.Join(in.Dir, monitorLock)
	done := func() bool { return !lockfile.Held(lock) }
	if err := logfile.Follow(ctx, in.Dir, o.Tail, done, emit); err != nil {
		return fmt.Errorf("following logs: %w", err)
	}
	return nil
}
