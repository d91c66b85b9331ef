package assemble

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// checkInit accepts the nos-init binary only if it is a static x86-64
// executable: it runs as PID 1 of a guest with no libc.
func checkInit(path string) error {
	if path == "" {
		return fmt.Errorf("no nos-init given: %w", ErrInitMissing)
	}
	err := checkStaticELF(path)
	switch {
	case errors.Is(err, ErrDynamicELF):
		return fmt.Errorf("nos-init at %s is %w (built with cgo): rebuild it static with `CGO_ENABLED=0 go install github.com/nosproject/nos/cmd/nos-init` or `make install`", path, ErrDynamicELF)
	case err != nil:
		return fmt.Errorf("nos-init at %s is unusable: %w", path, err)
	}
	return nil
}

// FindInit locates the nos-init binary: $NOS_INIT, then next to the
// running nos executable, then on PATH.
func FindInit() (string, error) {
	var tried []string
	if p := os.Getenv("NOS_INIT"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("NOS_INIT=%s: %w", p, err)
		}
		return p, nil
	}
	if exe, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(exe), "nos-init")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
		tried = append(tried, p)
	}
	if p, err := lookPathInit(); err == nil {
		return p, nil
	}
	tried = append(tried, "$PATH")
	return "", fmt.Errorf("looked in %s; install it next to nos with `go install github.com/nosproject/nos/cmd/nos-init@latest` (or `make install`), or set NOS_INIT: %w", strings.Join(tried, ", "), ErrInitMissing)
}

func lookPathInit() (string, error) {
	for _, dir := range filepath.SplitList(os.Getenv("PATH")) {
		p := filepath.Join(dir, "nos-init")
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("not on PATH")
}
