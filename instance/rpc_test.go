package instance

import (
	"errors"
	"fmt"
	"log/slog"
	"testing"
)

// TestResponseCodes: errors cross the monitor's socket as codes and come
// back as the same sentinels, whatever their messages say.
func TestResponseCodes(t *testing.T) {
	for _, sentinel := range []error{ErrNotRunning, ErrBadRequest} {
		r := responseFor(fmt.Errorf("instance x: %w", sentinel))
		if r.Code == "" || r.Code == codeFailed {
			t.Errorf("%v: code %q", sentinel, r.Code)
		}
		r.Error = "a message in another wording" // not what is compared
		if err := r.err(); !errors.Is(err, sentinel) {
			t.Errorf("%v came back as %v", sentinel, err)
		}
	}
	if r := responseFor(nil); r != (response{}) || r.err() != nil {
		t.Errorf("success: %+v, %v", r, r.err())
	}
	r := responseFor(errors.New("disk on fire"))
	if err := r.err(); err == nil || errors.Is(err, ErrNotRunning) || r.Code != codeFailed {
		t.Errorf("other error: %+v, %v", r, err)
	}
	// A code this side does not know is still an error.
	if err := (response{Code: "from-the-future", Error: "x"}).err(); err == nil {
		t.Error("unknown code read as success")
	}
}

func TestHandleUnknownOp(t *testing.T) {
	m := &monitor{dir: t.TempDir(), wake: make(chan struct{}, 1), log: discardLogger()}
	if err := m.handle(request{Op: "reboot"}); !errors.Is(err, ErrBadRequest) {
		t.Errorf("unknown op: %v", err)
	}
	if err := m.handle(request{Op: opKill, Signal: 1}); !errors.Is(err, ErrNotRunning) {
		t.Errorf("signal with no VM: %v", err)
	}
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
