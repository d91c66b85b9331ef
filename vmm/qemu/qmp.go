package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/vmm"
)

// qmp is a client of QEMU's machine protocol on a connected socket: JSON
// commands, one at a time, answered by a return or an error; events in
// between are skipped.
type qmp struct {
	mu   sync.Mutex
	conn *net.UnixConn
	in   *bufio.Reader
	init bool
}

// maxQMPLine bounds a reply: QEMU is trusted, but a bug must not make the
// monitor read without end.
const maxQMPLine = 1 << 20

type qmpReply struct {
	Return json.RawMessage `json:"return"`
	Error  *struct {
		Class string `json:"class"`
		Desc  string `json:"desc"`
	} `json:"error"`
	Event string `json:"event"`
	QMP   any    `json:"QMP"`
}

func newQMP(c net.Conn) (*qmp, error) {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return nil, errors.New("qmp: not a unix socket")
	}
	return &qmp{conn: uc, in: bufio.NewReaderSize(uc, 64<<10)}, nil
}

// handshake reads the greeting and leaves negotiation mode (once).
func (q *qmp) handshake(ctx context.Context) error {
	if q.init {
		return nil
	}
	if _, err := q.read(ctx, true); err != nil {
		return fmt.Errorf("qmp greeting: %w", err)
	}
	q.init = true
	_, err := q.cmd(ctx, "qmp_capabilities", nil, nil)
	return err
}

// read reads one message that is not an event (the greeting, if asked).
func (q *qmp) read(ctx context.Context, greeting bool) (*qmpReply, error) {
	dl, ok := ctx.Deadline()
	if !ok {
		dl = time.Now().Add(30 * time.Second)
	}
	_ = q.conn.SetReadDeadline(dl)
	for {
		line, err := q.in.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) || len(line) > maxQMPLine {
			return nil, errors.New("qmp: reply too long")
		}
		if err != nil {
			return nil, err
		}
		var r qmpReply
		if err := json.Unmarshal(line, &r); err != nil {
			return nil, fmt.Errorf("qmp: %w", err)
		}
		if r.Event != "" || (r.QMP != nil && !greeting) {
			continue
		}
		return &r, nil
	}
}

// cmd runs one command, with f passed alongside (SCM_RIGHTS) if set.
func (q *qmp) cmd(ctx context.Context, name string, args any, f *os.File) (json.RawMessage, error) {
	m := map[string]any{"execute": name}
	if args != nil {
		m["arguments"] = args
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	var oob []byte
	if f != nil {
		oob = unix.UnixRights(int(f.Fd()))
	}
	if _, _, err := q.conn.WriteMsgUnix(b, oob, nil); err != nil {
		return nil, fmt.Errorf("qmp %s: %w", name, err)
	}
	r, err := q.read(ctx, false)
	if err != nil {
		return nil, fmt.Errorf("qmp %s: %w", name, err)
	}
	if r.Error != nil {
		return nil, fmt.Errorf("qmp %s: %s", name, r.Error.Desc)
	}
	return r.Return, nil
}

// run takes the lock, handshakes and runs fn.
func (q *qmp) run(ctx context.Context, fn func() error) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if err := q.handshake(ctx); err != nil {
		return err
	}
	return fn()
}

// migration is query-migrate's answer, as much as nos reads of it.
type migration struct {
	Status    string `json:"status"`
	ErrorDesc string `json:"error-desc"`
}

func (q *qmp) migration(ctx context.Context) (migration, error) {
	var m migration
	b, err := q.cmd(ctx, "query-migrate", nil, nil)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}

// waitMigration polls until the migration, outgoing or incoming, ends.
func (q *qmp) waitMigration(ctx context.Context) (migration, error) {
	for {
		m, err := q.migration(ctx)
		if err != nil {
			return m, err
		}
		switch m.Status {
		case "completed":
			return m, nil
		case "failed", "cancelled":
			return m, fmt.Errorf("migration %s: %s", m.Status, m.ErrorDesc)
		}
		select {
		case <-ctx.Done():
			return m, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
}

var _ vmm.Saver = (*process)(nil)

// Save pauses the VM and streams its state into f (QEMU's migration to a
// descriptor: the sandbox forbids the exec: form).
func (p *process) Save(ctx context.Context, f *os.File) (vmm.SaveStats, error) {
	var st vmm.SaveStats
	if p.qmp == nil {
		return st, errors.New("this VM was not started saveable")
	}
	began := time.Now()
	err := p.qmp.run(ctx, func() error {
		if _, err := p.qmp.cmd(ctx, "stop", nil, nil); err != nil {
			return err
		}
		if _, err := p.qmp.cmd(ctx, "getfd", map[string]string{"fdname": "nos-state"}, f); err != nil {
			return err
		}
		if _, err := p.qmp.cmd(ctx, "migrate", map[string]string{"uri": "fd:nos-state"}, nil); err != nil {
			return err
		}
		_, err := p.qmp.waitMigration(ctx)
		return err
	})
	st.Duration = time.Since(began)
	if fi, err2 := f.Stat(); err2 == nil {
		st.Bytes = fi.Size()
	}
	return st, err
}

// Resume waits for an incoming state to be loaded, if the VM was started
// from one, and runs the VM.
func (p *process) Resume(ctx context.Context) error {
	if p.qmp == nil {
		return errors.New("this VM was not started saveable")
	}
	return p.qmp.run(ctx, func() error {
		if p.restoring {
			if _, err := p.qmp.waitMigration(ctx); err != nil {
				return fmt.Errorf("loading the saved state: %w", err)
			}
			p.restoring = false
		}
		_, err := p.qmp.cmd(ctx, "cont", nil, nil)
		return err
	})
}
