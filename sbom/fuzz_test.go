package sbom

import (
	"bytes"
	"context"
	"io"
	"os"
	"testing"

	"github.com/nosproject/nos/initramfs"
)

// FuzzBuildInfo feeds arbitrary bytes to the Go build information
// reader as an ELF file: it may find no program, never panic.
func FuzzBuildInfo(f *testing.F) {
	if exe, err := os.Executable(); err == nil {
		if b, err := os.ReadFile(exe); err == nil && len(b) > 0 {
			f.Add(b[:min(len(b), 64<<10)])
		}
	}
	f.Add([]byte("\x7fELF\x02\x01\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		goProgram(bytes.NewReader(data))
	})
}

// FuzzCpio feeds arbitrary bytes to the initramfs reader, as a cpio
// archive and as a gzip-compressed one: errors, never a panic.
func FuzzCpio(f *testing.F) {
	a := &initramfs.Archive{}
	a.AddFile("/init", 0o755, []byte("\x7fELF\x02\x01\x01 not a program"))
	a.AddFile("/etc/app.conf", 0o644, []byte("x=1\n"))
	var gz bytes.Buffer
	a.WriteTo(&gz)
	f.Add(gz.Bytes())
	f.Add([]byte("070701"))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv := &Inventory{Files: map[string]File{}}
		inv.Config.Added = []string{"/etc"}
		v := newVisitor(inv)
		ctx := context.Background()
		readCpio(ctx, bytes.NewReader(data), v.visitor(LocationInitramfs), v.wants)
		readInitramfs(ctx, bytes.NewReader(data), v.visitor(LocationInitramfs), v.wants)
		readCpio(ctx, bytes.NewReader(data), func(string, int64, io.ReaderAt) error { return nil }, nil)
	})
}
