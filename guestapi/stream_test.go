package guestapi

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestFrameRoundTrip(t *testing.T) {
	var b bytes.Buffer
	big := bytes.Repeat([]byte("x"), MaxFrameData+10)
	if err := WriteFrames(&b, FrameStdin, 7, big); err != nil {
		t.Fatal(err)
	}
	if err := WriteFrames(&b, FrameEOF, 7, nil); err != nil {
		t.Fatal(err)
	}
	r := ResizeFrame(3, 24, 80)
	b.Write(AppendFrame(nil, r))
	b.Write(AppendFrame(nil, ExitFrame(9, -1, "not found")))

	var got []byte
	for range 2 {
		f, err := ReadFrame(&b)
		if err != nil || f.Kind != FrameStdin || f.Session != 7 {
			t.Fatalf("stdin frame: %+v %v", f, err)
		}
		got = append(got, f.Data...)
	}
	if !bytes.Equal(got, big) {
		t.Fatalf("split data: got %d bytes, want %d", len(got), len(big))
	}
	if f, err := ReadFrame(&b); err != nil || f.Kind != FrameEOF || len(f.Data) != 0 {
		t.Fatalf("EOF frame: %+v %v", f, err)
	}
	f, err := ReadFrame(&b)
	if err != nil {
		t.Fatal(err)
	}
	if rows, cols, err := f.Size(); err != nil || rows != 24 || cols != 80 || f.Session != 3 {
		t.Fatalf("resize: %d %d %v", rows, cols, err)
	}
	f, err = ReadFrame(&b)
	if err != nil {
		t.Fatal(err)
	}
	if code, why, err := f.Exit(); err != nil || code != -1 || why != "not found" || f.Session != 9 {
		t.Fatalf("exit: %d %q %v", code, why, err)
	}
	if _, err := ReadFrame(&b); err != io.EOF {
		t.Fatalf("at the end: %v, want io.EOF", err)
	}
}

func TestReadFrameRefuses(t *testing.T) {
	long := AppendFrame(nil, Frame{Kind: FrameStdout})
	long[8] = 0xff // length 255…
	long[5] = 0x01 // …plus 16 MiB
	if _, err := ReadFrame(bytes.NewReader(long)); !errors.Is(err, ErrFrameTooLong) {
		t.Errorf("overlong frame: %v", err)
	}
	short := AppendFrame(nil, Frame{Kind: FrameStdout, Data: []byte("abcdef")})
	if _, err := ReadFrame(bytes.NewReader(short[:len(short)-2])); err != io.ErrUnexpectedEOF {
		t.Errorf("truncated frame: %v", err)
	}
	if _, _, err := (Frame{Kind: FrameExit, Data: []byte{1}}).Exit(); err == nil {
		t.Error("short exit frame decoded")
	}
	if _, _, err := (Frame{Kind: FrameResize, Data: []byte{1, 2, 3}}).Size(); err == nil {
		t.Error("short resize frame decoded")
	}
}

// FuzzReadFrame: the host parses frames from the untrusted guest; no
// input makes it panic or return more than MaxFrameData.
func FuzzReadFrame(f *testing.F) {
	f.Add(AppendFrame(nil, Frame{Kind: FrameStdout, Session: 1, Data: []byte("hi")}))
	f.Add(AppendFrame(nil, ExitFrame(1, 127, "nope")))
	f.Add([]byte{6, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			fr, err := ReadFrame(r)
			if err != nil {
				return
			}
			if len(fr.Data) > MaxFrameData {
				t.Fatalf("frame of %d bytes", len(fr.Data))
			}
			_, _, _ = fr.Exit()
			_, _, _ = fr.Size()
			// What was read encodes back to the same bytes.
			enc := AppendFrame(nil, fr)
			again, err := ReadFrame(bytes.NewReader(enc))
			if err != nil || again.Kind != fr.Kind || again.Session != fr.Session || !bytes.Equal(again.Data, fr.Data) {
				t.Fatalf("re-encoding %+v: %+v %v", fr, again, err)
			}
		}
	})
}
