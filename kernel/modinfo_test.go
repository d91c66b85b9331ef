package kernel

import (
	"bytes"
	"debug/elf"
	"errors"
	"io"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

func TestReadModinfo(t *testing.T) {
	mod := makeModule("alias=virtio:d00000001v*", "alias=virtio:d00000002v*", "depends=virtio,virtio_ring",
		"name=virtio_net", "license=GPL", "=orphan", "garbage", "vermagic=6.1.0 SMP mod_unload")
	got, err := ReadModinfo(bytes.NewReader(mod))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"alias":    {"virtio:d00000001v*", "virtio:d00000002v*"},
		"depends":  {"virtio,virtio_ring"},
		"name":     {"virtio_net"},
		"license":  {"GPL"},
		"vermagic": {"6.1.0 SMP mod_unload"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("ReadModinfo (-want +got):\n%s", diff)
	}
}

func TestReadModinfoErrors(t *testing.T) {
	tests := map[string]struct {
		data []byte
		want string
	}{
		"empty":      {nil, "not an ELF"},
		"text":       {[]byte("hello, world"), "not an ELF"},
		"magic only": {[]byte(elf.ELFMAG), "malformed ELF"},
		"truncated":  {makeModule("name=x")[:80], "malformed ELF"},
		"no modinfo": {makeELF(testSection{name: ".text", typ: elf.SHT_PROGBITS, data: []byte{1}}), "no .modinfo"},
		"nobits": {makeELF(testSection{name: ".modinfo", typ: elf.SHT_NOBITS, data: []byte{1}}),
			"no data"},
	}
	for name, tt := range tests {
		_, err := ReadModinfo(bytes.NewReader(tt.data))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", name, err, tt.want)
		}
	}
	if _, err := ReadModinfo(bytes.NewReader([]byte("MZ..."))); !errors.Is(err, ErrNotELF) {
		t.Errorf("err = %v, want ErrNotELF", err)
	}
}

func TestOpenModule(t *testing.T) {
	mod := makeModule("name=m", "depends=")
	dir := t.TempDir()
	for _, name := range []string{"m.ko", "m.ko.xz", "m.ko.zst", "m.ko.gz"} {
		path := writeFile(t, dir, name, compress(t, name, mod))
		got, err := OpenModule(path)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !bytes.Equal(got, mod) {
			t.Errorf("%s: got %d bytes, want the %d-byte module", name, len(got), len(mod))
		}
	}
	bad := writeFile(t, dir, "bad.ko.xz", mod) // not xz at all
	if _, err := OpenModule(bad); err == nil || !strings.Contains(err.Error(), "bad.ko.xz") {
		t.Errorf("corrupt xz: err = %v, want an error naming the file", err)
	}
	if _, err := OpenModule(filepath.Join(dir, "missing.ko")); err == nil {
		t.Error("missing file: no error")
	}
}

func TestOpenModuleTooLarge(t *testing.T) {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, io.LimitReader(zeros{}, maxModuleSize+1)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	path := writeFile(t, t.TempDir(), "huge.ko.zst", buf.Bytes())
	if _, err := OpenModule(path); err == nil || !strings.Contains(err.Error(), "larger than 64 MiB") {
		t.Errorf("err = %v, want larger than 64 MiB", err)
	}
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func FuzzReadModinfo(f *testing.F) {
	mod := makeModule("name=virtio_net", "depends=virtio,virtio_ring", "alias=a", "alias=b")
	f.Add(mod)
	f.Add(mod[:len(mod)/2])
	f.Add(makeELF())
	f.Add(makeELF(testSection{name: ".modinfo", typ: elf.SHT_NOBITS}))
	f.Add([]byte(elf.ELFMAG))
	f.Add([]byte("not an elf"))
	f.Fuzz(func(t *testing.T, data []byte) {
		info, err := ReadModinfo(bytes.NewReader(data))
		if err != nil {
			if info != nil {
				t.Errorf("error %v with a non-nil result", err)
			}
			return
		}
		for key, values := range info {
			if key == "" || strings.ContainsAny(key, "=\x00") {
				t.Errorf("bad key %q", key)
			}
			for _, v := range values {
				if strings.Contains(v, "\x00") {
					t.Errorf("value %q of %q holds a NUL", v, key)
				}
			}
		}
	})
}
