package guest

import (
	"fmt"
	"os"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// setClock sets the system clock from the host's, sent a moment ago: the
// RTC the kernel read at boot has one-second resolution.
func setClock(host time.Time) error {
	if host.IsZero() {
		return nil
	}
	tv := unix.NsecToTimeval(host.UnixNano())
	if err := unix.Settimeofday(&tv); err != nil {
		return fmt.Errorf("setting clock: %w", err)
	}
	return nil
}

// seedEntropy adds the host's seed to the pool and credits it, so that
// getrandom does not block early in boot.
func seedEntropy(seed []byte) error {
	if len(seed) == 0 {
		return nil
	}
	f, err := os.OpenFile("/dev/urandom", os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("seeding entropy: %w", err)
	}
	defer f.Close()
	// struct rand_pool_info { int entropy_count; int buf_size; __u32 buf[]; }
	buf := make([]byte, 8+len(seed))
	*(*int32)(unsafe.Pointer(&buf[0])) = int32(len(seed) * 8)
	*(*int32)(unsafe.Pointer(&buf[4])) = int32(len(seed))
	copy(buf[8:], seed)
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, f.Fd(), unix.RNDADDENTROPY, uintptr(unsafe.Pointer(&buf[0])))
	if errno != 0 {
		return fmt.Errorf("seeding entropy: %w", errno)
	}
	return nil
}

func setHostname(name string) error {
	if name == "" {
		return nil
	}
	if err := unix.Sethostname([]byte(name)); err != nil {
		return fmt.Errorf("setting hostname: %w", err)
	}
	return nil
}

// powerOff flushes filesystems and turns the machine off. It does not
// return unless the kernel refuses.
func powerOff() error {
	unix.Sync()
	return unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}
