package ociruntime

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"

	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Hooks, as the runtime specification runs them (config.md, "POSIX-platform
// Hooks"), in the runtime's namespaces on the host:
//
//   - prestart (deprecated, what docker's libnetwork uses to move its veth
//     into the container's network namespace) and createRuntime: at
//     create, once the supervisor exists (the state's pid is its, and
//     /proc/PID/ns/net the container's network namespace); a failure
//     fails create and removes the container.
//   - poststart: after start; a failure is logged and start succeeds.
//   - poststop: at delete; a failure is logged and delete succeeds.
//
// createContainer and startContainer hooks run in the container's mount
// namespace, which a VM's guest does not share with the host: they are
// not run, and the plan notes them.
//
// Each hook gets the container's state as JSON on stdin, its path, args
// (args[0] as its argv[0]) and env; a timeout in seconds kills it.

// defaultHookTimeout bounds a hook that sets no timeout.
const defaultHookTimeout = 2 * time.Minute

func runHooks(kind string, hs []specs.Hook, state specs.State) error {
	if len(hs) == 0 {
		return nil
	}
	in, err := json.Marshal(state)
	if err != nil {
		return err
	}
	for i, h := range hs {
		timeout := defaultHookTimeout
		if h.Timeout != nil {
			if *h.Timeout <= 0 {
				return fmt.Errorf("%s hook %d (%s): timeout %d is not positive", kind, i, h.Path, *h.Timeout)
			}
			timeout = time.Duration(*h.Timeout) * time.Second
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		cmd := exec.CommandContext(ctx, h.Path)
		if len(h.Args) > 0 {
			cmd.Args = h.Args
		}
		cmd.Env = h.Env
		if cmd.Env == nil {
			cmd.Env = []string{}
		}
		cmd.Stdin = bytes.NewReader(in)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		err := cmd.Run()
		timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
		cancel()
		if timedOut {
			return fmt.Errorf("%s hook %d (%s): timed out after %v", kind, i, h.Path, timeout)
		}
		if err != nil {
			msg := strings.TrimSpace(out.String())
			if len(msg) > 500 {
				msg = msg[:500] + "…"
			}
			return fmt.Errorf("%s hook %d (%s): %v: %s", kind, i, h.Path, err, msg)
		}
	}
	return nil
}
