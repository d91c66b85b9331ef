package initrdz

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"io"
	"testing"

	"github.com/pierrec/lz4/v4"
)

// lz4Stream makes a legacy stream of one chunk holding p.
func lz4Stream(t testing.TB, p []byte) []byte {
	out := make([]byte, lz4.CompressBlockBound(len(p)))
	n, err := lz4.CompressBlock(p, out, nil)
	if err != nil || n == 0 {
		t.Fatalf("CompressBlock: %d, %v", n, err)
	}
	b := append([]byte{}, LZ4Magic...)
	b = binary.LittleEndian.AppendUint32(b, uint32(n))
	return append(b, out[:n]...)
}

func TestNewReader(t *testing.T) {
	want := bytes.Repeat([]byte("070701 an archive "), 100)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(want)
	zw.Close()
	for name, b := range map[string][]byte{"lz4": lz4Stream(t, want), "gzip": gz.Bytes()} {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if got, err := io.ReadAll(r); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: read %d bytes, %v; want %d", name, len(got), err, len(want))
		}
	}
	for _, head := range []string{"", "07", "070701", "\x02\x21\x4c"} {
		if _, err := NewReader(bytes.NewReader([]byte(head))); err == nil {
			t.Errorf("%q: no error, want one", head)
		}
	}
}

// FuzzNewReader: an image's initramfs layer is outside data; reading it
// must end in data or an error, never a panic.
func FuzzNewReader(f *testing.F) {
	f.Add(lz4Stream(f, []byte("070701 hello")))
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte("070701 hello"))
	zw.Close()
	f.Add(gz.Bytes())
	f.Add([]byte{0x02, 0x21, 0x4c, 0x18, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(r, 64<<20))
	})
}
