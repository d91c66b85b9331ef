package instance

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/nosproject/nos/vmm/kvm"
	"github.com/nosproject/nos/vmm/qemu"
)

// Accel choices for --accel.
const (
	AccelAuto = "auto"
)

// ChooseAccel resolves --accel. "auto" uses KVM only when a probe guest
// really runs under it; otherwise TCG, with a note saying why. The probe's
// verdict is cached per host boot in cacheDir.
func ChooseAccel(ctx context.Context, want, cacheDir string) (accel, note string, err error) {
	switch want {
	case qemu.AccelTCG:
		return qemu.AccelTCG, "", nil
	case qemu.AccelKVM:
		if err := kvm.Probe(ctx, 2*time.Second); err != nil {
			return "", "", fmt.Errorf("--accel kvm: %w; use --accel tcg or auto", err)
		}
		return qemu.AccelKVM, "", nil
	case AccelAuto, "":
		if err := probeCached(ctx, cacheDir); err != nil {
			return qemu.AccelTCG, fmt.Sprintf("note: KVM unusable (%v); using TCG software emulation, which is slower", err), nil
		}
		return qemu.AccelKVM, "", nil
	default:
		return "", "", fmt.Errorf("--accel %q: want auto, kvm or tcg: %w", want, ErrBadFlag)
	}
}

func probeCached(ctx context.Context, cacheDir string) error {
	boot, _ := os.ReadFile("/proc/sys/kernel/random/boot_id")
	file := filepath.Join(cacheDir, "kvm-probe")
	key := strings.TrimSpace(string(boot))
	if b, err := os.ReadFile(file); err == nil && key != "" {
		if id, verdict, ok := strings.Cut(string(b), "\n"); ok && id == key {
			if verdict == "ok" {
				return nil
			}
			return fmt.Errorf("%s", verdict)
		}
	}
	err := kvm.Probe(ctx, 2*time.Second)
	verdict := "ok"
	if err != nil {
		verdict = err.Error()
	}
	if key != "" && ctx.Err() == nil {
		_ = os.MkdirAll(cacheDir, 0o755)
		if f, err := os.CreateTemp(cacheDir, "kvm-probe-*"); err == nil {
			_, werr := f.WriteString(key + "\n" + verdict)
			if f.Close() == nil && werr == nil {
				_ = os.Rename(f.Name(), file)
			}
			_ = os.Remove(f.Name())
		}
	}
	return err
}
