package kbuild

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
)

// An edit is a change nos makes to the kernel source before it compiles
// it, where no configuration option does what nos needs. Each is an exact
// text replacement in one file that must match exactly once: a source it
// does not fit is refused, not built half-changed.
type edit struct {
	name     string
	file     string // relative to the tree
	old, new string
}

// edits are applied, in order, to the extracted tarball sources nos builds
// (Debian's linux-source); a source directory given with --source is built
// as it is. They are part of the build key.
var edits = []edit{{
	// The virtio console fills every receive queue (each port's and the
	// multiport control queue) with one page per slot, and QEMU's
	// virtio-mmio offers 1024 slots: 4 MiB of guest memory per queue, 8 MiB
	// for nos's one port, all of it touched (and so held by QEMU on the
	// host). Consumed buffers are added back, so a cap on the first fill
	// is a cap on the buffers in flight: 64 pages, 256 KiB a queue.
	name: "virtio_console: at most 64 receive buffers a queue",
	file: "drivers/char/virtio_console.c",
	old:  "\t\tnr_added_bufs++;\n\t\tspin_unlock_irq(lock);\n\t} while (ret > 0);\n",
	new:  "\t\tnr_added_bufs++;\n\t\tspin_unlock_irq(lock);\n\t} while (ret > 0 && nr_added_bufs < 64); /* nos: bounded buffers */\n",
}}

// applyEdits makes es in the tree.
func applyEdits(tree string, es []edit) error {
	for _, e := range es {
		p := filepath.Join(tree, e.file)
		b, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("kernel build: source edit %q: %w", e.name, err)
		}
		if n := bytes.Count(b, []byte(e.old)); n != 1 {
			return fmt.Errorf("kernel build: source edit %q: the text to change occurs %d times in %s, want once (a kernel source nos does not know: give it with --source DIR to build it unchanged)", e.name, n, e.file)
		}
		if err := os.WriteFile(p, bytes.Replace(b, []byte(e.old), []byte(e.new), 1), 0o644); err != nil {
			return fmt.Errorf("kernel build: source edit %q: %w", e.name, err)
		}
	}
	return nil
}

// editsKey is what the edits add to a build key: nothing for a source
// built unchanged.
func editsKey(es []edit) []byte {
	var b bytes.Buffer
	for _, e := range es {
		fmt.Fprintf(&b, "edit %s\n%s\n--- %q\n+++ %q\n", e.name, e.file, e.old, e.new)
	}
	return b.Bytes()
}
