package qemu

import (
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
)

// LeastMemory is the least guest memory in which QEMU's x86 loader places
// kernel and initrd apart. QEMU puts the initramfs at the top of guest RAM
// (page-aligned down) without looking where the kernel ends: an ELF kernel
// booted through PVH ends where its last loadable segment's memory does
// (bss and brk included, which the kernel zeroes first thing), a bzImage
// where its decompressor's working area, pref_address + init_size, does.
// A smaller guest zeroes or decompresses over its own initramfs and faults
// for ever; nos refuses it instead.
func (Driver) LeastMemory(kernel, initrd string) (int64, error) {
	end, err := kernelEnd(kernel)
	if err != nil {
		return 0, fmt.Errorf("kernel %s: %w", kernel, err)
	}
	var size int64
	if initrd != "" {
		fi, err := os.Stat(initrd)
		if err != nil {
			return 0, err
		}
		size = fi.Size()
	}
	const page, mib = 4096, 1 << 20
	need := end + (size+page-1)/page*page
	return (need + mib - 1) / mib * mib, nil
}

// kernelEnd returns the first physical address above what the kernel
// occupies once loaded.
func kernelEnd(path string) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return imageEnd(f)
}

func imageEnd(r io.ReaderAt) (int64, error) {
	var magic [4]byte
	if _, err := r.ReadAt(magic[:], 0); err != nil {
		return 0, errors.New("not a kernel image: too short")
	}
	if string(magic[:]) == elf.ELFMAG {
		return elfEnd(r)
	}
	return bzImageEnd(r)
}

func elfEnd(r io.ReaderAt) (int64, error) {
	ef, err := elf.NewFile(r)
	if err != nil {
		return 0, fmt.Errorf("not a kernel image: %w", err)
	}
	var end uint64
	for _, p := range ef.Progs {
		if p.Type == elf.PT_LOAD && p.Memsz > 0 {
			e := p.Paddr + p.Memsz
			if e < p.Paddr || e > 1<<40 {
				return 0, errors.New("not a kernel image: a segment beyond 1 TiB")
			}
			end = max(end, e)
		}
	}
	if end == 0 {
		return 0, errors.New("not a kernel image: no loadable segment")
	}
	return int64(end), nil
}

// bzImageEnd reads the x86 boot protocol's setup header: "HdrS" at 0x202,
// the protocol version at 0x206, and from 2.10 on pref_address (0x258)
// and init_size (0x260), the memory the decompressed kernel needs from
// where it runs.
func bzImageEnd(r io.ReaderAt) (int64, error) {
	var h [0x264]byte
	if _, err := r.ReadAt(h[:], 0); err != nil || string(h[0x202:0x206]) != "HdrS" {
		return 0, errors.New("not a kernel image: neither ELF nor an x86 bzImage")
	}
	if binary.LittleEndian.Uint16(h[0x206:]) < 0x20a {
		return 0, nil // too old to say; such kernels are not booted here
	}
	pref := binary.LittleEndian.Uint64(h[0x258:])
	size := uint64(binary.LittleEndian.Uint32(h[0x260:]))
	if pref > 1<<40 {
		return 0, errors.New("not a kernel image: preferred address beyond 1 TiB")
	}
	return int64(pref + size), nil
}
