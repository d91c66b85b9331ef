package main

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
)

// What /proc says about a process's memory and CPU, and about the host's
// CPU. Sizes are in KiB, as /proc gives them.

// procMem is a process's resident memory.
type procMem struct {
	// VmRSS, RssAnon and RssFile are from /proc/PID/status.
	VmRSS   int64 `json:"vm_rss_kib"`
	RssAnon int64 `json:"rss_anon_kib"`
	RssFile int64 `json:"rss_file_kib"`
	// Pss is from /proc/PID/smaps_rollup: shared pages are divided among
	// the processes that map them (the nos binary among monitors, QEMU's
	// binary and libraries among QEMUs).
	Pss int64 `json:"pss_kib"`
}

// readProcMem reads pid's status and smaps_rollup.
func readProcMem(pid int) (procMem, error) {
	var m procMem
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return m, err
	}
	f, err := parseKiBFields(string(b), ":", "VmRSS", "RssAnon", "RssFile")
	if err != nil {
		return m, fmt.Errorf("/proc/%d/status: %w", pid, err)
	}
	m.VmRSS, m.RssAnon, m.RssFile = f[0], f[1], f[2]
	b, err = os.ReadFile(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return m, err
	}
	f, err = parseKiBFields(string(b), ":", "Pss")
	if err != nil {
		return m, fmt.Errorf("/proc/%d/smaps_rollup: %w", pid, err)
	}
	m.Pss = f[0]
	if m.VmRSS <= 0 || m.Pss <= 0 {
		return m, fmt.Errorf("pid %d: implausible memory figures %+v", pid, m)
	}
	return m, nil
}

// parseKiBFields returns the values of "KEY<sep> N kB" lines, in the order
// of keys; each key must occur once.
func parseKiBFields(text, sep string, keys ...string) ([]int64, error) {
	out := make([]int64, len(keys))
	seen := make([]bool, len(keys))
	for _, line := range strings.Split(text, "\n") {
		k, v, ok := strings.Cut(line, sep)
		if !ok {
			continue
		}
		for i, key := range keys {
			if k != key {
				continue
			}
			if seen[i] {
				return nil, fmt.Errorf("%s given twice", key)
			}
			f := strings.Fields(v)
			if len(f) != 2 || f[1] != "kB" {
				return nil, fmt.Errorf("unexpected line %q", line)
			}
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil || n < 0 {
				return nil, fmt.Errorf("unexpected line %q", line)
			}
			out[i], seen[i] = n, true
		}
	}
	for i, key := range keys {
		if !seen[i] {
			return nil, fmt.Errorf("no %s line", key)
		}
	}
	return out, nil
}

// mapping is one entry of /proc/PID/smaps.
type mapping struct {
	Perms         string
	Path          string // empty for anonymous memory
	Size          int64  // KiB
	Rss           int64  // KiB
	AnonHugePages int64  // KiB
}

// parseSmaps reads the mappings of a /proc/PID/smaps text.
func parseSmaps(text string) ([]mapping, error) {
	var maps []mapping
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if isMappingHeader(f) {
			m := mapping{Perms: f[1]}
			if len(f) >= 6 {
				m.Path = strings.Join(f[5:], " ")
			}
			maps = append(maps, m)
			continue
		}
		if len(maps) == 0 {
			return nil, fmt.Errorf("smaps: %q before the first mapping", line)
		}
		cur := &maps[len(maps)-1]
		var dst *int64
		switch f[0] {
		case "Size:":
			dst = &cur.Size
		case "Rss:":
			dst = &cur.Rss
		case "AnonHugePages:":
			dst = &cur.AnonHugePages
		default:
			continue
		}
		if len(f) != 3 || f[2] != "kB" {
			return nil, fmt.Errorf("smaps: unexpected line %q", line)
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil || n < 0 {
			return nil, fmt.Errorf("smaps: unexpected line %q", line)
		}
		*dst = n
	}
	if len(maps) == 0 {
		return nil, errors.New("smaps: no mappings")
	}
	return maps, nil
}

// isMappingHeader reports whether f is "START-END PERMS OFFSET DEV INODE
// [PATH]", the first line of a smaps entry.
func isMappingHeader(f []string) bool {
	if len(f) < 5 || len(f[1]) != 4 {
		return false
	}
	lo, hi, ok := strings.Cut(f[0], "-")
	if !ok {
		return false
	}
	_, err1 := strconv.ParseUint(lo, 16, 64)
	_, err2 := strconv.ParseUint(hi, 16, 64)
	return err1 == nil && err2 == nil
}

// qemuMemSplit divides QEMU's resident memory (the sum of Rss over its
// mappings, from one read of smaps) into guest RAM, TCG's translation
// buffer and the rest.
type qemuMemSplit struct {
	Total int64 `json:"smaps_rss_total_kib"`
	// GuestRAM is the Rss of the guest RAM mapping: the one anonymous
	// read-write private mapping whose size is exactly the guest memory.
	// Guest RAM is backed by transparent huge pages when the host allows
	// it (QEMU asks for them), so a page the guest touches can make 2 MiB
	// resident: this is what the host pays, not what the guest used.
	GuestRAM          int64 `json:"guest_ram_rss_kib"`
	GuestRAMHugePages int64 `json:"guest_ram_anon_huge_pages_kib"`
	// TCG is the Rss of the one anonymous read-write-execute mapping: the
	// TCG translation buffer (code generated from guest code). Zero, with
	// TCGFound false, under KVM.
	TCG      int64 `json:"tcg_buffer_rss_kib"`
	TCGFound bool  `json:"tcg_buffer_found"`
	// Other is everything else: QEMU's binary and libraries, heap, device
	// state, the kernel and initramfs it loaded.
	Other int64 `json:"other_rss_kib"`
}

// splitQEMUMem reads pid's smaps and splits it for a guest of memMiB.
func splitQEMUMem(pid, memMiB int) (qemuMemSplit, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/smaps", pid))
	if err != nil {
		return qemuMemSplit{}, err
	}
	maps, err := parseSmaps(string(b))
	if err != nil {
		return qemuMemSplit{}, fmt.Errorf("/proc/%d/smaps: %w", pid, err)
	}
	return splitMappings(maps, memMiB)
}

func splitMappings(maps []mapping, memMiB int) (qemuMemSplit, error) {
	var s qemuMemSplit
	var ram, tcg int
	for _, m := range maps {
		s.Total += m.Rss
		switch {
		case m.Path == "" && m.Perms == "rw-p" && m.Size == int64(memMiB)*1024:
			ram++
			s.GuestRAM, s.GuestRAMHugePages = m.Rss, m.AnonHugePages
		case m.Path == "" && m.Perms == "rwxp":
			tcg++
			s.TCG = m.Rss
		}
	}
	if ram != 1 {
		return s, fmt.Errorf("found %d anonymous rw-p mappings of exactly %d MiB, want 1: cannot tell guest RAM apart", ram, memMiB)
	}
	if tcg > 1 {
		return s, fmt.Errorf("found %d anonymous rwxp mappings, want at most 1: cannot tell the TCG buffer apart", tcg)
	}
	s.TCGFound = tcg == 1
	s.Other = s.Total - s.GuestRAM - s.TCG
	return s, nil
}

// cpuTicks is utime+stime of pid, in clock ticks, from /proc/PID/stat.
func cpuTicks(pid int) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	return parseStatTicks(string(b))
}

func parseStatTicks(stat string) (int64, error) {
	// Fields after the parenthesised name (which may hold spaces) start
	// with the state, field 3; utime and stime are fields 14 and 15.
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("unexpected /proc stat %q", stat)
	}
	f := strings.Fields(stat[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("unexpected /proc stat %q", stat)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	s, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil || u < 0 || s < 0 {
		return 0, fmt.Errorf("unexpected /proc stat %q", stat)
	}
	return u + s, nil
}

// hostCPU is the "cpu" line of /proc/stat: busy and total ticks over all
// cores since boot.
type hostCPU struct{ busy, total int64 }

func readHostCPU() (hostCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return hostCPU{}, err
	}
	return parseHostCPU(string(b))
}

func parseHostCPU(stat string) (hostCPU, error) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) < 9 || f[0] != "cpu" {
			continue
		}
		// user nice system idle iowait irq softirq steal [guest guest_nice]:
		// guest time is already counted in user and nice.
		var c hostCPU
		for i := 1; i <= 8; i++ {
			n, err := strconv.ParseInt(f[i], 10, 64)
			if err != nil || n < 0 {
				return hostCPU{}, fmt.Errorf("unexpected /proc/stat line %q", line)
			}
			c.total += n
			if i != 4 && i != 5 { // idle, iowait
				c.busy += n
			}
		}
		return c, nil
	}
	return hostCPU{}, errors.New("no cpu line in /proc/stat")
}

// memAvailable is MemAvailable from /proc/meminfo, in KiB.
func memAvailable() (int64, error) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	f, err := parseKiBFields(string(b), ":", "MemAvailable")
	if err != nil {
		return 0, fmt.Errorf("/proc/meminfo: %w", err)
	}
	return f[0], nil
}

// procCmdline is pid's argv.
func procCmdline(pid int) ([]string, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return nil, err
	}
	return strings.Split(strings.TrimRight(string(b), "\x00"), "\x00"), nil
}

// procPPid is pid's parent, from /proc/PID/status.
func procPPid(pid int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "PPid:"); ok {
			return strconv.Atoi(strings.TrimSpace(v))
		}
	}
	return 0, fmt.Errorf("no PPid in /proc/%d/status", pid)
}
