// Command nos builds applications into minimal VM images and runs them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nosproject/nos/cli"
	"github.com/nosproject/nos/ociruntime"
	"github.com/nosproject/nos/vmm/virtiofs"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == virtiofs.HelperVerb {
		err := virtiofs.RunHelper(os.Args[2:]) // becomes a read-only share's daemon
		fmt.Fprintln(os.Stderr, "nos: virtiofs read-only share:", err)
		os.Exit(1)
	}
	// Called as nos-runtime (a link to nos, or the supervisor it starts),
	// nos is an OCI runtime with runc's command line.
	if filepath.Base(os.Args[0]) == ociruntime.Name {
		os.Exit(ociruntime.Main(os.Args[1:], ociruntime.Stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr}))
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
