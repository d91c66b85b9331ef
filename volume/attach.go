package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosproject/nos/internal/lockfile"
)

// Attachment is a volume a monitor holds for one boot: exclusively when
// read-write, shared with other readers when read-only. Nobody may write
// a volume that another VM has mounted, or read one another VM writes:
// ext4 is a file system of one machine.
type Attachment struct {
	Volume   *Volume
	ReadOnly bool
	// CopyUp is set when the volume had never been attached: the guest
	// copies the image's files at the mount point into it first.
	CopyUp bool
	// Checked is e2fsck's report when the volume was checked before this
	// attachment because its last use did not end cleanly.
	Checked string
	release func()
}

// Attach takes the volume name for holder (an instance ID).
func (s *Store) Attach(ctx context.Context, name, holder string, readOnly bool) (*Attachment, error) {
	v, err := s.Get(name)
	if err != nil {
		return nil, err
	}
	if err := checkExt4(v.Disk()); err != nil {
		return nil, fmt.Errorf("volume %s: %w", name, err)
	}
	lock := filepath.Join(v.Dir, attachLock)
	if readOnly && v.Clean {
		return shareLock(ctx, &Attachment{Volume: v, ReadOnly: true}, lock)
	}
	// A writer, or a reader of a volume to check first: alone.
	excl, err := lockfile.TryLock(lock)
	if err != nil {
		return nil, inUse(v)
	}
	a := &Attachment{Volume: v, ReadOnly: readOnly, release: excl}
	if !v.Clean {
		if a.Checked, err = fsck(ctx, v.Disk()); err != nil {
			excl()
			return nil, fmt.Errorf("volume %s: %w", name, err)
		}
		if err := v.update(func(m *Volume) { m.Clean = true }); err != nil {
			excl()
			return nil, err
		}
	}
	if readOnly {
		// Readers share: trade the exclusive lock for a shared one.
		excl()
		return shareLock(ctx, a, lock)
	}
	a.CopyUp = v.Fresh
	if err := os.WriteFile(filepath.Join(v.Dir, holderFile), []byte(holder+"\n"), 0o600); err != nil {
		excl()
		return nil, err
	}
	if err := v.update(func(m *Volume) { m.Clean, m.Fresh = false, false }); err != nil {
		excl()
		return nil, err
	}
	return a, nil
}

// shareLock takes the shared lock of a reader.
func shareLock(ctx context.Context, a *Attachment, lock string) (*Attachment, error) {
	lctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	shared, err := lockfile.Lock(lctx, lock, true)
	if err != nil {
		return nil, inUse(a.Volume)
	}
	a.release = shared
	return a, nil
}

func inUse(v *Volume) error {
	if h := v.Holder(); h != "" {
		return fmt.Errorf("volume %s is attached read-write to instance %s: %w", v.Name, h, ErrInUse)
	}
	return fmt.Errorf("volume %s is attached to another instance: %w", v.Name, ErrInUse)
}

// Detach releases the volume. clean says the guest unmounted it: only
// then is it not checked before its next use.
func (a *Attachment) Detach(clean bool) error {
	defer a.release()
	if a.ReadOnly {
		return nil
	}
	err := a.Volume.update(func(m *Volume) {
		m.Clean = clean
		if clean {
			m.LastCleanUnmount = time.Now().UTC()
		}
	})
	if rerr := os.Remove(filepath.Join(a.Volume.Dir, holderFile)); err == nil && rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
		err = rerr
	}
	return err
}

// fsck runs e2fsck -p (preen: replay the journal, fix what is safe to fix
// without asking) and returns what it said. Exit codes 0–2 are a usable
// file system; 4 and up mean it needs a person.
func fsck(ctx context.Context, disk string) (string, error) {
	bin, err := exec.LookPath("e2fsck")
	if err != nil {
		return "", fmt.Errorf("e2fsck not found: install e2fsprogs: %w", err)
	}
	out, err := exec.CommandContext(ctx, bin, "-p", disk).CombinedOutput()
	report := strings.TrimSpace(string(out))
	var xe *exec.ExitError
	if errors.As(err, &xe) && xe.ExitCode() < 4 {
		err = nil
	}
	if err != nil {
		return report, fmt.Errorf("e2fsck -p found errors it cannot fix (%v): %s; run `e2fsck -f %s` yourself", err, lastLine(report), disk)
	}
	if report == "" {
		report = "clean"
	}
	return report, nil
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}

// checkExt4 reads the superblock's magic number (0xEF53 at byte 1080): a
// file that is not ext4 is refused before a guest tries to mount it.
func checkExt4(disk string) error {
	f, err := os.Open(disk)
	if err != nil {
		return err
	}
	defer f.Close()
	var magic [2]byte
	if _, err := f.ReadAt(magic[:], 1024+56); err != nil || magic != [2]byte{0x53, 0xef} {
		return fmt.Errorf("%s is not an ext4 file system: %w", disk, ErrBadInput)
	}
	return nil
}
