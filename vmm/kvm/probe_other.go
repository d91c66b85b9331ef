//go:build !(linux && amd64)

package kvm

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"time"
)

func probe(context.Context, time.Duration, []byte) error {
	return fmt.Errorf("kvm: probe not implemented on %s/%s: %w", runtime.GOOS, runtime.GOARCH, errors.ErrUnsupported)
}
