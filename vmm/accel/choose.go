package accel

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Accelerators, as --accel names them.
const (
	Auto = "auto"
	KVM  = "kvm"
	TCG  = "tcg"
)

// ErrUnknown is wrapped by Choose's error for a name it does not know.
var ErrUnknown = errors.New("unknown accelerator")

// Choose resolves --accel. Auto uses KVM only when a probe guest really
// runs under it; otherwise TCG, with a note saying why. The probe's verdict
// is cached per host boot in cacheDir.
func Choose(ctx context.Context, want, cacheDir string) (accel, note string, err error) {
	switch want {
	case TCG:
		return TCG, "", nil
	case KVM:
		if err := ProbeKVM(ctx, 2*time.Second); err != nil {
			return "", "", fmt.Errorf("--accel kvm: %w; use --accel tcg or auto", err)
		}
		return KVM, "", nil
	case Auto, "":
		if err := probeCached(ctx, cacheDir); err != nil {
			return TCG, fmt.Sprintf("note: KVM unusable (%v); using TCG software emulation, which is slower", err), nil
		}
		return KVM, "", nil
	default:
		return "", "", fmt.Errorf("--accel %q: want auto, kvm or tcg: %w", want, ErrUnknown)
	}
}

// probeCached runs ProbeKVM once per host boot: the verdict is kept in
// cacheDir under the boot's ID.
func probeCached(ctx context.Context, cacheDir string) error {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	file := filepath.Join(cacheDir, "kvm-probe")
	key := strings.TrimSpace(string(boot))
	if b, err := os.ReadFile(file); err == nil && key != "" {
		if id, verdict, ok := strings.Cut(string(b), "\n"); ok && id == key {
			if verdict == "ok" {
				return nil
			}
			return errors.New(verdict)
		}
	}
	err := ProbeKVM(ctx, 2*time.Second)
	verdict := "ok"
	if err != nil {
		verdict = err.Error()
	}
	if key != "" && ctx.Err() == nil {
		// A cache that cannot be written only costs a probe next time.
		_ = writeVerdict(cacheDir, file, key+"\n"+verdict)
	}
	return err
}

func writeVerdict(dir, file, content string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, "kvm-probe-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, werr := f.WriteString(content)
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		return werr
	}
	return os.Rename(f.Name(), file)
}
