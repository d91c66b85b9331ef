// Package buildstamp tells whether two of nos's binaries came from one
// build: `make build` links the same Stamp into each (-ldflags -X), so a
// nos finds the nos-monitor beside it usable only when their stamps agree.
// A binary built otherwise (go build, go install) has no stamp.
package buildstamp

// Stamp is set at link time; empty when the build did not set it.
var Stamp string

// Flag is the -ldflags argument that sets Stamp to s.
func Flag(s string) string { return "-X github.com/nosproject/nos/internal/buildstamp.Stamp=" + s }
