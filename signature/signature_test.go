package signature

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const (
	digA = "sha256:1111111111111111111111111111111111111111111111111111111111111111"
	digB = "sha256:2222222222222222222222222222222222222222222222222222222222222222"
)

func keys(t *testing.T, pw string) (*KeyPair, *Signature) {
	t.Helper()
	kp, err := GenerateKeyPair([]byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(kp.Private, []byte(pw))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(s, "127.0.0.1:5000/team/web", digA)
	if err != nil {
		t.Fatal(err)
	}
	return kp, &sig
}

func TestSignVerify(t *testing.T) {
	kp, sig := keys(t, "pw")
	other, _ := keys(t, "")
	v, _ := LoadVerifier(kp.Public)
	ov, _ := LoadVerifier(other.Public)
	if repo, err := Verify(v, *sig, digA); err != nil || repo != "127.0.0.1:5000/team/web" {
		t.Fatalf("Verify: %q, %v", repo, err)
	}
	for name, c := range map[string]struct {
		err error
		f   func() error
	}{
		"another digest": {ErrInvalid, func() error { _, err := Verify(v, *sig, digB); return err }},
		"another key":    {ErrInvalid, func() error { _, err := Verify(ov, *sig, digA); return err }},
		"a changed payload": {ErrInvalid, func() error {
			s := *sig
			s.Payload = []byte(strings.Replace(string(s.Payload), "team", "evil", 1))
			_, err := Verify(v, s, digA)
			return err
		}},
		"no signatures":           {ErrUnsigned, func() error { return VerifyAny(v, nil, digA) }},
		"not base64":              {ErrInvalid, func() error { _, err := Verify(v, Signature{Payload: sig.Payload, Base64: "%%%"}, digA); return err }},
		"a public key as private": {ErrBadKey, func() error { _, err := LoadSigner(kp.Public, nil); return err }},
		"garbage as public":       {ErrBadKey, func() error { _, err := LoadVerifier([]byte("nope")); return err }},
		"a wrong password":        {ErrBadPassword, func() error { _, err := LoadSigner(kp.Private, []byte("no")); return err }},
	} {
		if err := c.f(); !errors.Is(err, c.err) {
			t.Errorf("%s: %v, want %v", name, err, c.err)
		}
	}
	if Tag(digA) != "sha256-1111111111111111111111111111111111111111111111111111111111111111.sig" {
		t.Errorf("Tag = %s", Tag(digA))
	}
}

func TestImageRoundTripAndLocal(t *testing.T) {
	_, sig := keys(t, "pw")
	img, err := Image([]Signature{*sig, *sig})
	if err != nil {
		t.Fatal(err)
	}
	got, err := FromImage(img)
	if err != nil || len(got) != 2 || string(got[0].Payload) != string(sig.Payload) || got[0].Base64 != sig.Base64 {
		t.Fatalf("FromImage: %v, %v", got, err)
	}
	l, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // once each
		if err := l.Add(context.Background(), digA, *sig); err != nil {
			t.Fatal(err)
		}
	}
	if have, err := l.Get(digA); err != nil || len(have) != 1 {
		t.Errorf("Get: %v, %v", have, err)
	}
	if have, err := l.Get(digB); err != nil || len(have) != 0 {
		t.Errorf("Get of an unsigned image: %v, %v", have, err)
	}
	if _, err := l.Get("sha256:../../etc"); err == nil {
		t.Error("a bad digest was accepted")
	}
}

// FuzzVerify: any payload and signature from a registry is refused or
// accepted, never a panic.
func FuzzVerify(f *testing.F) {
	kp, err := GenerateKeyPair(nil)
	if err != nil {
		f.Fatal(err)
	}
	s, _ := LoadSigner(kp.Private, nil)
	sig, _ := Sign(s, "r/x", digA)
	v, _ := LoadVerifier(kp.Public)
	f.Add(sig.Payload, sig.Base64)
	f.Add([]byte(`{"critical":null}`), "")
	f.Fuzz(func(t *testing.T, p []byte, b64 string) {
		_, _ = Verify(v, Signature{Payload: p, Base64: b64}, digA)
	})
}
