package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
	"golang.org/x/term"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/instance"
)

// defaultDetachKeys are docker's: Ctrl-P Ctrl-Q.
const defaultDetachKeys = "ctrl-p,ctrl-q"

// parseDetachKeys reads docker's --detach-keys syntax: comma-separated
// keys, each a single character or ctrl-X (X a letter or one of @[\]^_).
func parseDetachKeys(s string) ([]byte, error) {
	if s == "" {
		return nil, nil
	}
	var keys []byte
	for _, k := range strings.Split(s, ",") {
		lk := strings.ToLower(k)
		switch {
		case len(k) == 1:
			keys = append(keys, k[0])
		case strings.HasPrefix(lk, "ctrl-") && len(k) == 6:
			c := strings.ToUpper(k[5:])[0]
			if c < '@' || c > '_' {
				return nil, fmt.Errorf("--detach-keys %q: unknown key %q", s, k)
			}
			keys = append(keys, c-'@')
		default:
			return nil, fmt.Errorf("--detach-keys %q: unknown key %q (want a character or ctrl-X)", s, k)
		}
	}
	return keys, nil
}

// detachScanner finds the detach sequence in typed input. Bytes that may
// begin the sequence are held back until the next ones show whether they
// do; the sequence itself is never passed on.
type detachScanner struct {
	keys []byte
	held int // how many of keys the input ends with
}

// scan returns the input to pass on and whether the sequence was typed
// (what follows it is dropped).
func (d *detachScanner) scan(p []byte) (out []byte, detach bool) {
	if len(d.keys) == 0 {
		return p, false
	}
	for _, c := range p {
		if c == d.keys[d.held] {
			d.held++
			if d.held == len(d.keys) {
				return out, true
			}
			continue
		}
		// The held bytes were not the sequence: pass them on, then see
		// whether c begins it anew.
		out = append(out, d.keys[:d.held]...)
		d.held = 0
		if c == d.keys[0] {
			d.held = 1
			if len(d.keys) == 1 {
				return out, true
			}
			continue
		}
		out = append(out, c)
	}
	return out, false
}

// streamOptions say how a terminal session runs.
type streamOptions struct {
	stdin      bool   // forward our stdin
	tty        bool   // the remote side is a terminal: raw mode, sizes, detach keys
	detachKeys []byte // with tty
	exec       bool   // the stream ends with an exit frame
}

// errDetached ends a session the user detached from.
var errDetached = errors.New("detached")

// runStream copies our stdin to the stream and its output to ours until
// the stream ends. It returns an exec's exit code, or errDetached.
func runStream(ctx context.Context, e *env, s *instance.Stream, o streamOptions) (int, error) {
	defer s.Close()
	fd, isTerm := terminalFD(e.stdin)
	if o.tty && isTerm {
		if o.stdin {
			old, err := term.MakeRaw(fd)
			if err != nil {
				return 0, fmt.Errorf("putting the terminal in raw mode: %w", err)
			}
			defer func() { _ = term.Restore(fd, old) }()
		}
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		defer signal.Stop(winch)
		sendSize := func() {
			if ws, err := unix.IoctlGetWinsize(fd, unix.TIOCGWINSZ); err == nil {
				_ = s.Send(guestapi.ResizeFrame(0, ws.Row, ws.Col))
			}
		}
		sendSize()
		go func() {
			for range winch {
				sendSize()
			}
		}()
	}
	detached := make(chan struct{})
	if o.stdin {
		go func() {
			sc := detachScanner{}
			if o.tty {
				sc.keys = o.detachKeys
			}
			buf := make([]byte, 32<<10)
			for {
				n, err := e.stdin.Read(buf)
				if n > 0 {
					out, detach := sc.scan(buf[:n])
					if len(out) > 0 {
						if s.Send(guestapi.Frame{Kind: guestapi.FrameStdin, Data: out}) != nil {
							return
						}
					}
					if detach {
						close(detached)
						_ = s.Close()
						return
					}
				}
				if err != nil {
					_ = s.Send(guestapi.Frame{Kind: guestapi.FrameEOF})
					return
				}
			}
		}()
	}
	code := 0
	for {
		f, err := s.Recv()
		if err != nil {
			select {
			case <-detached:
				return 0, errDetached
			default:
			}
			if o.exec {
				return 0, errors.New("the instance's monitor ended the session (the instance stopped?)")
			}
			return code, nil
		}
		switch f.Kind {
		case guestapi.FrameStdout:
			_, _ = e.stdout.Write(f.Data)
		case guestapi.FrameStderr:
			_, _ = e.stderr.Write(f.Data)
		case guestapi.FrameExit:
			c, why, err := f.Exit()
			if err != nil {
				return 0, err
			}
			if why != "" {
				fmt.Fprintln(e.stderr, "nos: "+oneLine(why))
			}
			return c, nil
		}
	}
}

// terminalFD is r's descriptor when r is a terminal.
func terminalFD(r io.Reader) (int, bool) {
	f, ok := r.(*os.File)
	if !ok {
		return -1, false
	}
	fd := int(f.Fd())
	return fd, term.IsTerminal(fd)
}

// terminalSize is the size of our terminal (stdin's, else stdout's), 0 0
// when neither is one.
func terminalSize(e *env) (rows, cols uint16) {
	for _, x := range []any{e.stdin, e.stdout} {
		if f, ok := x.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			if ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ); err == nil {
				return ws.Row, ws.Col
			}
		}
	}
	return 0, 0
}
