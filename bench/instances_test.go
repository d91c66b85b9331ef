package main

import (
	"strings"
	"testing"
)

// smapsSample is a shortened /proc/PID/smaps of QEMU running a 256 MiB TCG
// guest, as read on the benchmark machine.
const smapsSample = `55889a631000-55889aa38000 r--p 00000000 fe:00 10166286                   /usr/bin/qemu-system-x86_64
Size:               4124 kB
Rss:                4124 kB
AnonHugePages:         0 kB
5588b5f52000-5588b6939000 rw-p 00000000 00:00 0                          [heap]
Size:              10140 kB
Rss:                4556 kB
AnonHugePages:         0 kB
7f7074000000-7f707479a000 rw-p 00000000 00:00 0 
Size:               7784 kB
Rss:                7764 kB
AnonHugePages:         0 kB
7f707be00000-7f708be00000 rw-p 00000000 00:00 0 
Size:             262144 kB
KernelPageSize:        4 kB
Rss:              133120 kB
AnonHugePages:    133120 kB
7f708c000000-7f70cbfff000 rwxp 00000000 00:00 0 
Size:            1048572 kB
Rss:               59392 kB
AnonHugePages:     59392 kB
7f70cbfff000-7f70cc000000 ---p 00000000 00:00 0 
Size:                  4 kB
Rss:                   0 kB
AnonHugePages:         0 kB
7f70d1600000-7f70d1a26000 r--p 00000000 fe:00 9986499                    /tmp/nos bench/home/instances/x/initramfs
Size:               4248 kB
Rss:                4248 kB
AnonHugePages:         0 kB
VmFlags: rd mr mw me sd 
`

func TestSplitQEMUMem(t *testing.T) {
	maps, err := parseSmaps(smapsSample)
	if err != nil {
		t.Fatal(err)
	}
	if len(maps) != 7 || maps[6].Path != "/tmp/nos bench/home/instances/x/initramfs" || maps[2].Path != "" {
		t.Fatalf("parsed %+v", maps)
	}
	s, err := splitMappings(maps, 256)
	if err != nil {
		t.Fatal(err)
	}
	want := qemuMemSplit{Total: 4124 + 4556 + 7764 + 133120 + 59392 + 4248, GuestRAM: 133120, GuestRAMHugePages: 133120, TCG: 59392, TCGFound: true, Other: 4124 + 4556 + 7764 + 4248}
	if s != want {
		t.Errorf("split = %+v, want %+v", s, want)
	}
	if _, err := splitMappings(maps, 128); err == nil {
		t.Error("a split without a mapping of the guest's size succeeded")
	}
	twice := append(append([]mapping(nil), maps...), mapping{Perms: "rw-p", Size: 256 * 1024, Rss: 1})
	if _, err := splitMappings(twice, 256); err == nil {
		t.Error("two candidate guest RAM mappings were accepted")
	}
	if _, err := parseSmaps("Rss: 1 kB\n"); err == nil {
		t.Error("smaps without a mapping header was accepted")
	}
}

func TestProcStatusFields(t *testing.T) {
	status := "Name:\tqemu\nVmHWM:\t  258224 kB\nVmRSS:\t  258224 kB\nRssAnon:\t  231552 kB\nRssFile:\t   26672 kB\nRssShmem:\t0 kB\n"
	f, err := parseKiBFields(status, ":", "VmRSS", "RssAnon", "RssFile")
	if err != nil || f[0] != 258224 || f[1] != 231552 || f[2] != 26672 {
		t.Errorf("parseKiBFields = %v, %v", f, err)
	}
	if _, err := parseKiBFields(status, ":", "Pss"); err == nil {
		t.Error("a missing field was not reported")
	}
}

func TestParseStatTicks(t *testing.T) {
	// The name may hold spaces and parentheses.
	stat := "11614 (qemu (x) y) S 11604 11614 11604 0 -1 4194624 5000 0 0 0 453 120 0 0 20 0 4 0 100 0 0"
	if n, err := parseStatTicks(stat); err != nil || n != 573 {
		t.Errorf("parseStatTicks = %d, %v; want 573", n, err)
	}
	if _, err := parseStatTicks("1 (x) S 2"); err == nil {
		t.Error("a short stat line was accepted")
	}
}

func TestParseHostCPU(t *testing.T) {
	c, err := parseHostCPU("cpu  100 5 50 800 20 1 2 3 40 0\ncpu0 1 1 1 1 1 1 1 1 0 0\n")
	if err != nil {
		t.Fatal(err)
	}
	if c.total != 981 || c.busy != 161 {
		t.Errorf("parseHostCPU = %+v, want total 981, busy 161", c)
	}
}

func TestParseInstInfo(t *testing.T) {
	id := strings.Repeat("ab", 32)
	out := `[{"ID":"` + id + `","MonitorAlive":true,"Config":{"memoryMiB":128,"accel":"tcg"},"State":{"status":"running","monitorPid":11604,"vmPid":11614,"exitCode":0}}]`
	in, err := parseInstInfo([]byte(out), id)
	if err != nil {
		t.Fatal(err)
	}
	if !in.MonitorAlive || in.State.Status != "running" || in.State.MonitorPID != 11604 || in.State.QEMUPID != 11614 || in.Config.MemoryMiB != 128 {
		t.Errorf("parsed %+v", in)
	}
	if _, err := parseInstInfo([]byte(out), strings.Repeat("cd", 32)); err == nil {
		t.Error("another instance's output was accepted")
	}
}

func TestParseSizes(t *testing.T) {
	if s, err := parseSizes("64, 96"); err != nil || len(s) != 2 || s[0] != 64 || s[1] != 96 {
		t.Errorf("parseSizes = %v, %v", s, err)
	}
	if s, err := parseSizes(""); err != nil || len(s) != 0 {
		t.Errorf("parseSizes(\"\") = %v, %v", s, err)
	}
	if _, err := parseSizes("64m"); err == nil {
		t.Error("64m was accepted")
	}
}
