package main

import (
	"strings"
	"testing"
)

func TestSummarize(t *testing.T) {
	for _, tc := range []struct {
		in            []float64
		med, min, max float64
	}{
		{[]float64{5}, 5, 5, 5},
		{[]float64{3, 1, 2}, 2, 1, 3},
		{[]float64{4, 1, 3, 2}, 2.5, 1, 4},
	} {
		s, err := summarize(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if s.Median != tc.med || s.Min != tc.min || s.Max != tc.max || s.N != len(tc.in) {
			t.Errorf("summarize(%v) = %+v, want median %v min %v max %v", tc.in, s, tc.med, tc.min, tc.max)
		}
		if s.Values[0] != tc.in[0] {
			t.Errorf("summarize(%v) reordered the values: %v", tc.in, s.Values)
		}
	}
	if _, err := summarize(nil); err == nil {
		t.Error("summarize(nil) did not fail")
	}
}

const inspectOutput = `[
  {
    "name": "httpserver", "tag": "latest", "digest": "sha256:71", "size": 19798946,
    "config": {"memoryMiB": 256, "cpus": 1, "kernelCmdline": "console=ttyS0", "kernel": {"version": "6.1.0-56-cloud-amd64"}},
    "manifest": {
      "config": {"mediaType": "application/vnd.nos.image.config.v1+json", "size": 298},
      "layers": [
        {"mediaType": "application/vnd.nos.kernel.v1", "size": 14186432},
        {"mediaType": "application/vnd.nos.initramfs.v1.cpio+gzip", "size": 5611621}
      ]
    }
  }
]`

func TestInspectSizes(t *testing.T) {
	im, err := parseInspect([]byte(inspectOutput))
	if err != nil {
		t.Fatal(err)
	}
	k, i, err := layerSizes(im)
	if err != nil {
		t.Fatal(err)
	}
	if k != 14186432 || i != 5611621 || im.Size != 19798946 || im.Config.Kernel.Version != "6.1.0-56-cloud-amd64" {
		t.Errorf("got kernel %d, initramfs %d, total %d, version %q", k, i, im.Size, im.Config.Kernel.Version)
	}
	if f := initramfsFormat(im); f != "gzip" {
		t.Errorf("initramfs format %q, want gzip", f)
	}
	lz4, err := parseInspect([]byte(strings.Replace(inspectOutput, "cpio+gzip", "cpio+lz4", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if f := initramfsFormat(lz4); f != "lz4" {
		t.Errorf("initramfs format %q, want lz4", f)
	}
}

func TestInspectRejects(t *testing.T) {
	noKernel := strings.Replace(inspectOutput, "application/vnd.nos.kernel.v1", "application/octet-stream", 1)
	im, err := parseInspect([]byte(noKernel))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := layerSizes(im); err == nil {
		t.Error("an image without a kernel layer was accepted")
	}
	if _, err := parseInspect([]byte("[]")); err == nil {
		t.Error("an empty inspect output was accepted")
	}
}

func TestProcParsers(t *testing.T) {
	if n, err := parseVmHWM("Name:\tqemu\nVmPeak:\t 1 kB\nVmHWM:\t  261872 kB\nVmRSS:\t 2 kB\n"); err != nil || n != 261872 {
		t.Errorf("parseVmHWM = %d, %v; want 261872", n, err)
	}
	if _, err := parseVmHWM("Name:\tqemu\n"); err == nil {
		t.Error("parseVmHWM without VmHWM did not fail")
	}
	if m, err := parseCPUModel("processor\t: 0\nmodel name\t: AMD EPYC\nflags\t: x\n"); err != nil || m != "AMD EPYC" {
		t.Errorf("parseCPUModel = %q, %v", m, err)
	}
	if n, err := parseMemTotal("MemTotal:       24684000 kB\nMemFree: 1 kB\n"); err != nil || n != 24684000*1024 {
		t.Errorf("parseMemTotal = %d, %v", n, err)
	}
}

func TestWatchWriter(t *testing.T) {
	w := &watchWriter{marker: []byte("listening on")}
	for _, s := range []string{"2026/11/27 starting\n2026/11/27 listen", "ing", " on :8080\n"} {
		if _, ok := w.seen(); ok {
			t.Fatalf("marker seen before %q was written", s)
		}
		if _, err := w.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := w.seen(); !ok {
		t.Error("marker split across writes not seen")
	}
	if !strings.HasSuffix(w.String(), "listening on :8080\n") {
		t.Errorf("output not kept: %q", w.String())
	}
}
