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
}, {
	// x86-64 puts the few kilobytes of entry code on 2 MiB boundaries of
	// their own, so that page table isolation can map them with one large
	// page. The padding (int3) is kernel text, never freed: 3.4 MB of the
	// net kernel's 6.0 MB of .text, held in every guest for ever. Without
	// PAGE_TABLE_ISOLATION (nos kernels leave it out) page alignment is
	// all the entry code needs.
	name: "x86-64: no 2 MiB padding around the entry text without page table isolation",
	file: "arch/x86/kernel/vmlinux.lds.S",
	old:  "#define ALIGN_ENTRY_TEXT_BEGIN\t. = ALIGN(PMD_SIZE);\n#define ALIGN_ENTRY_TEXT_END\t. = ALIGN(PMD_SIZE);\n",
	new:  "#ifdef CONFIG_PAGE_TABLE_ISOLATION\n#define ALIGN_ENTRY_TEXT_BEGIN\t. = ALIGN(PMD_SIZE);\n#define ALIGN_ENTRY_TEXT_END\t. = ALIGN(PMD_SIZE);\n#else /* nos: page alignment is enough without PTI */\n#define ALIGN_ENTRY_TEXT_BEGIN\t. = ALIGN(PAGE_SIZE);\n#define ALIGN_ENTRY_TEXT_END\t. = ALIGN(PAGE_SIZE);\n#endif\n",
}, {
	// When an allocation has to take a page block of another kind, the
	// page allocator raises the zone's watermarks by a page block (4 MiB
	// in nos kernels, which have no huge pages) until kswapd has worked,
	// to keep huge pages possible. In a guest of a few tens of MiB that
	// is a fifth of its memory refused to every allocation: unpacking a
	// 10 MB initramfs in 36 MiB failed with 3.5 MB free against a boosted
	// minimum of 4.6 MB. nos guests never use huge pages.
	name: "mm: no watermark boosting",
	file: "mm/page_alloc.c",
	old:  "int watermark_boost_factor __read_mostly = 15000;\n",
	new:  "int watermark_boost_factor __read_mostly; /* nos: no boosting */\n",
}, {
	// The LZ4 legacy format's chunks hold at most 8 MiB, and the kernel
	// unpacks an LZ4 initramfs through an 8 MiB buffer it allocates whole:
	// a third of a small guest's memory, for a moment. nos writes its
	// archives in chunks of initramfs.LZ4ChunkSize (256 KiB), which any
	// kernel unpacks; nos's kernels then need no larger buffer. An LZ4
	// initramfs with larger chunks does not unpack on them.
	name: "lib/lz4: 256 KiB chunks for the initramfs",
	file: "lib/decompress_unlz4.c",
	old:  "#define LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE (8 << 20)\n",
	new:  "#define LZ4_DEFAULT_UNCOMPRESSED_CHUNK_SIZE (256 << 10) /* nos: initramfs.LZ4ChunkSize */\n",
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
