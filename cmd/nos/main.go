// Command nos builds applications into minimal VM images and runs them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nosproject/nos/cli"
	"github.com/nosproject/nos/vmm/virtiofs"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == virtiofs.HelperVerb {
		virtiofs.RunHelper(os.Args[2:]) // a read-only share's daemon; does not return
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
