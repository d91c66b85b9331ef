// Command nos builds applications into minimal VM images and runs them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/nosproject/nos/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := cli.Execute(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
