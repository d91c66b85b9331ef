package guest

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/nosproject/nos/guestapi"
)

// The random driver's ioctls (linux/random.h): RNDADDENTROPY is
// _IOW('R', 0x03, int[2]), RNDRESEEDCRNG _IO('R', 0x07).
const (
	rndAddEntropy = 0x40085203
	rndReseedCRNG = 0x5207
)

// quiescer holds a port's writes while the VM's state is saved
// (guestapi.Mux).
type quiescer interface {
	Quiesce(ch int, data []byte) error
	Unquiesce()
}

// applyRestore takes the time, entropy and name of a VM that runs on from
// a saved state, and tells the application.
func applyRestore(r *guestapi.Restore, app int) error {
	var errs []error
	ts := unix.NsecToTimespec(r.UnixNano)
	if err := unix.ClockSettime(unix.CLOCK_REALTIME, &ts); err != nil {
		errs = append(errs, fmt.Errorf("setting the clock: %w", err))
	}
	if err := reseed(r.Seed); err != nil {
		errs = append(errs, err)
	}
	if r.Hostname != "" {
		if err := unix.Sethostname([]byte(r.Hostname)); err != nil {
			errs = append(errs, fmt.Errorf("hostname: %w", err))
		}
	}
	pub := *r
	pub.Seed = nil
	if err := writeRestored(&pub); err != nil {
		errs = append(errs, err)
	}
	if r.Signal > 0 && app > 0 {
		if err := unix.Kill(app, syscall.Signal(r.Signal)); err != nil {
			errs = append(errs, fmt.Errorf("signalling the application: %w", err))
		}
	}
	return errors.Join(errs...)
}

// reseed mixes seed into the kernel's input pool, credited, and makes the
// kernel's generator take a new key from it now: what any process draws
// afterwards is unrelated to what other copies of the saved state draw.
func reseed(seed []byte) error {
	if len(seed) < 32 || len(seed) > guestapi.MaxSeed {
		return fmt.Errorf("entropy: a seed of %d bytes; want 32 to %d", len(seed), guestapi.MaxSeed)
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("entropy: %w", err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	info := make([]byte, 8+len(seed))
	binary.NativeEndian.PutUint32(info[0:], uint32(8*len(seed)))
	binary.NativeEndian.PutUint32(info[4:], uint32(len(seed)))
	copy(info[8:], seed)
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndAddEntropy, uintptr(unsafe.Pointer(&info[0]))); e != 0 {
		return fmt.Errorf("entropy: RNDADDENTROPY: %w", e)
	}
	if _, _, e := unix.Syscall(unix.SYS_IOCTL, f.Fd(), rndReseedCRNG, 0); e != 0 {
		return fmt.Errorf("entropy: RNDRESEEDCRNG: %w", e)
	}
	return nil
}

func writeRestored(r *guestapi.Restore) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	dir := filepath.Dir(guestapi.RestoredFile)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp := guestapi.RestoredFile + ".tmp"
	if err := os.WriteFile(tmp, append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, guestapi.RestoredFile)
}
