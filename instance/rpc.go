package instance

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"time"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/internal/lockfile"
)

// The monitor's socket carries one JSON request and one JSON response per
// connection. Errors cross it as codes, mapped back to sentinel errors on
// the client side, so callers test them with errors.Is.

// Operations on the monitor's socket.
const (
	opStop = "stop" // SIGTERM to the app, the VM forced off after Timeout
	opKill = "kill" // Signal to the app; 0 or SIGKILL forces the VM off
)

// request is one call on the monitor's socket.
type request struct {
	Op      string        `json:"op"`
	Timeout time.Duration `json:"timeout,omitempty"`
	Signal  int           `json:"signal,omitempty"`
	// Stdin (attach) forwards the client's stdin; Exec (exec) is the
	// process to start.
	Stdin bool           `json:"stdin,omitempty"`
	Exec  *guestapi.Exec `json:"exec,omitempty"`
}

// response is the monitor's answer: no code is success.
type response struct {
	Code  string `json:"code,omitempty"`
	Error string `json:"error,omitempty"` // for people; Code is for programs
}

// ErrBadRequest is what the monitor says of a request it cannot read or
// does not know.
var ErrBadRequest = errors.New("bad request to the monitor")

// Error codes on the monitor's socket and the errors they stand for.
const (
	codeNotRunning = "not-running"
	codeBadRequest = "bad-request"
	codeFailed     = "failed" // anything else; the message says what
)

var codeErrors = map[string]error{
	codeNotRunning: ErrNotRunning,
	codeBadRequest: ErrBadRequest,
}

// responseFor encodes the outcome of a request.
func responseFor(err error) response {
	if err == nil {
		return response{}
	}
	for code, sentinel := range codeErrors {
		if errors.Is(err, sentinel) {
			return response{Code: code, Error: err.Error()}
		}
	}
	return response{Code: codeFailed, Error: err.Error()}
}

// err decodes a response into an error wrapping the code's sentinel.
func (r response) err() error {
	if r.Code == "" {
		return nil
	}
	if sentinel, ok := codeErrors[r.Code]; ok {
		return sentinel
	}
	return fmt.Errorf("the monitor: %s", r.Error)
}

// call sends a request to an instance's monitor.
func call(ctx context.Context, in *Instance, req request) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socketPath(in.Dir, monitorSocket))
	if err != nil {
		if !lockfile.Held(filepath.Join(in.Dir, monitorLock)) {
			return fmt.Errorf("instance %s: %w", displayName(in), ErrNotRunning)
		}
		return fmt.Errorf("reaching the monitor of %s: %w", displayName(in), err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		return err
	}
	if err := json.NewEncoder(c).Encode(req); err != nil {
		return fmt.Errorf("talking to the monitor: %w", err)
	}
	var resp response
	if err := json.NewDecoder(c).Decode(&resp); err != nil {
		return fmt.Errorf("talking to the monitor: %w", err)
	}
	if err := resp.err(); err != nil {
		return fmt.Errorf("instance %s: %w", displayName(in), err)
	}
	return nil
}

// serveConn answers one request.
func (m *monitor) serveConn(c net.Conn) {
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		m.log.Warn("monitor socket", "err", err)
		return
	}
	var req request
	var resp response
	// One line: what follows it is an interactive stream's frames.
	br := bufio.NewReader(c)
	line, err := br.ReadBytes('\n')
	if err == nil {
		err = json.Unmarshal(line, &req)
	}
	if err == nil && (req.Op == opAttach || req.Op == opExec) {
		m.serveStream(c, br, req)
		return
	}
	if err != nil {
		resp = responseFor(fmt.Errorf("%w: %v", ErrBadRequest, err))
	} else {
		resp = responseFor(m.handle(req))
	}
	if err := json.NewEncoder(c).Encode(resp); err != nil {
		m.log.Warn("answering a request", "op", req.Op, "err", err)
	}
}
