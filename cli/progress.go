package cli

import (
	"fmt"
	"io"
	"sync"
	"time"

	"golang.org/x/term"
)

// isTerminal reports whether w is a terminal.
func isTerminal(w any) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// minProgressBytes is the least a transfer must move to show progress.
const minProgressBytes = 1 << 20

// progressBar shows bytes moved and the rate on one rewritten line of a
// terminal; on anything else it shows nothing.
type progressBar struct {
	w     io.Writer
	label string
	on    bool

	mu    sync.Mutex
	start time.Time
	last  time.Time
	shown bool
	done  int64
	total int64
}

func newProgress(w io.Writer, label string) *progressBar {
	return &progressBar{w: w, label: label, on: isTerminal(w), start: time.Now()}
}

// update is a transfer.Options.Progress.
func (p *progressBar) update(done, total int64) {
	if !p.on {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.done, p.total = done, total
	if total < minProgressBytes || time.Since(p.last) < 100*time.Millisecond && done < total {
		return
	}
	p.last = time.Now()
	p.shown = true
	fmt.Fprintf(p.w, "\r\x1b[K%s: %s / %s  %s/s", p.label, humanSize(done), humanSize(total), humanSize(p.rate()))
}

func (p *progressBar) rate() int64 {
	s := time.Since(p.start).Seconds()
	if s <= 0 {
		return 0
	}
	return int64(float64(p.done) / s)
}

// finish ends the progress line.
func (p *progressBar) finish() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.shown {
		fmt.Fprintln(p.w)
		p.shown = false
	}
}
