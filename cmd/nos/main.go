// Command nos builds applications into minimal VM images and runs them.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/nosproject/nos/cli"
	"github.com/nosproject/nos/vmm/virtiofs"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == virtiofs.HelperVerb {
		err := virtiofs.RunHelper(os.Args[2:]) // becomes a read-only share's daemon
		fmt.Fprintln(os.Stderr, "nos: virtiofs read-only share:", err)
		os.Exit(1)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
