//go:build !(linux && amd64)

package accel

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

func probe(context.Context, time.Duration, []byte) error {
	return fmt.Errorf("kvm: probing KVM is supported on linux/amd64 only, not %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}
