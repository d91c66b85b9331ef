package elfdeps

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"errors"
	"os"
	"runtime"
	"testing"
)

// fuzzSeeds are valid objects and a few damaged ones.
func fuzzSeeds() [][]byte {
	seeds := [][]byte{
		mkELF(prog("libc.so.6")),
		mkELF(elfSpec{Type: elf.ET_EXEC, Base: 0x400000, Entry: 0x401000, Interp: testInterp, Needed: []string{"libx.so", "/opt/lib/liby.so"}, RPath: "$ORIGIN/../lib:/opt"}),
		mkELF(elfSpec{Entry: 1, Interp: testInterp, Needed: []string{"liba.so", "libb.so"}, RunPath: "/opt/l:${ORIGIN}", Flags1: uint64(elf.DF_1_NODEFLIB)}),
		mkELF(elfSpec{Type: elf.ET_EXEC, Base: 0x400000, Entry: 0x401000, Static: true}),
		mkELF(elfSpec{Machine: elf.EM_AARCH64, Entry: 1, Interp: testInterp}),
		mkELF32(elf.EM_386),
		[]byte("#!/bin/sh\n"),
		[]byte("\x7fELF"),
		{},
	}
	// A program header count and dynamic size that would be large if
	// trusted.
	big := mkELF(prog("libc.so.6"))
	binary.LittleEndian.PutUint16(big[56:], 0xfffe)
	seeds = append(seeds, big)
	if b, err := os.ReadFile("/usr/bin/true"); err == nil && len(b) < 1<<20 {
		seeds = append(seeds, b)
	}
	return seeds
}

// allocLimit is how much parsing one input may allocate: the program
// header table (3.6 MB at most), the dynamic segment (1 MiB) and strings
// (4 KiB per entry, 1024 DT_NEEDED) stay well under it.
const allocLimit = 32 << 20

func FuzzParseELF(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		info, err := parseELF(bytes.NewReader(b), int64(len(b)))
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > allocLimit {
			t.Fatalf("parsing %d bytes allocated %d bytes", len(b), n)
		}
		if err != nil {
			var ae *archError
			var ce *corruptError
			if !errors.Is(err, errNotELF) && !errors.As(err, &ae) && !errors.As(err, &ce) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			if info != nil {
				t.Fatal("error with info")
			}
			return
		}
		if info.Class != elf.ELFCLASS64 || info.Machine != elf.EM_X86_64 {
			t.Fatalf("accepted %v %v", info.Class, info.Machine)
		}
		if len(info.Needed) > maxNeeded {
			t.Fatalf("%d DT_NEEDED", len(info.Needed))
		}
		for _, n := range info.Needed {
			if n == "" || len(n) >= maxString {
				t.Fatalf("needed %q", n)
			}
		}
	})
}

// FuzzResolve runs Resolve on arbitrary bytes as the program, in a fake
// Debian tree with a few libraries.
func FuzzResolve(f *testing.F) {
	for _, s := range fuzzSeeds() {
		f.Add(s)
	}
	root := newFakeRoot(f)
	root.debian()
	root.elf(multiarch+"/libx.so", lib("libx.so", "liby.so"))
	root.elf(multiarch+"/liby.so", lib("liby.so", "libx.so", "libc.so.6"))
	root.elf("/opt/lib/liby.so", elfSpec{RunPath: "$ORIGIN", Needed: []string{"liba.so"}})
	root.elf("/opt/lib/liba.so", lib("liba.so"))
	root.symlink("/opt/l", "lib")
	root.write("/opt/arm/libb.so", mkELF(elfSpec{Machine: elf.EM_AARCH64}), 0o644)
	root.elf("/lib/libb.so", lib("libb.so"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if err := os.WriteFile(root.host("/opt/p"), b, 0o755); err != nil {
			t.Fatal(err)
		}
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		res, err := root.resolve("/opt/p", Options{})
		runtime.ReadMemStats(&after)
		if n := after.TotalAlloc - before.TotalAlloc; n > 4*allocLimit {
			t.Fatalf("resolving %d bytes allocated %d bytes", len(b), n)
		}
		if err != nil {
			if res != nil {
				t.Fatal("error with a result")
			}
			if msg := err.Error(); msg == "" || bytes.ContainsAny([]byte(msg), "\n\r\x00") {
				t.Fatalf("bad message %q", msg)
			}
			return
		}
		if res.Program != "/opt/p" {
			t.Fatalf("Program %q", res.Program)
		}
		seen := map[string]bool{}
		for i, fl := range res.Files {
			if seen[fl.GuestPath] || i > 0 && res.Files[i-1].GuestPath > fl.GuestPath {
				t.Fatalf("Files not sorted and unique: %q", fileList(res))
			}
			seen[fl.GuestPath] = true
		}
		if !seen["/opt/p"] {
			t.Fatalf("program missing from %q", fileList(res))
		}
	})
}
