package signature

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net/http/httptest"
	"net/url"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/sigstore/cosign/v2/pkg/cosign"
	ocimutate "github.com/sigstore/cosign/v2/pkg/oci/mutate"
	ociremote "github.com/sigstore/cosign/v2/pkg/oci/remote"
	"github.com/sigstore/cosign/v2/pkg/oci/static"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// The interoperability tests run cosign's own library against nos's
// package, through an in-process registry on loopback
// (go-containerregistry's): nos verifies what cosign signed, with a key
// cosign made, and cosign verifies what nos signed, with a key nos made.

func testRegistry(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(registry.New())
	t.Cleanup(srv.Close)
	u, err := url.Parse(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}

// pushRandom pushes an image standing for a nos image; it returns its
// repository and digest reference.
func pushRandom(t *testing.T, host string) (name.Repository, name.Digest) {
	t.Helper()
	img, err := random.Image(256, 1)
	if err != nil {
		t.Fatal(err)
	}
	ref, err := name.ParseReference(host+"/team/web:1", name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	h, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return ref.Context(), ref.Context().Digest(h.String())
}

func TestNosVerifiesWhatCosignSigned(t *testing.T) {
	host := testRegistry(t)
	repo, dig := pushRandom(t, host)
	kp, err := cosign.GenerateKeyPair(func(bool) ([]byte, error) { return []byte("pw"), nil })
	if err != nil {
		t.Fatal(err)
	}
	sv, err := cosign.LoadPrivateKey(kp.PrivateBytes, []byte("pw"), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := (&payload.Cosign{Image: dig}).MarshalJSON()
	if err != nil {
		t.Fatal(err)
	}
	raw, err := sv.SignMessage(bytes.NewReader(p))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := static.NewSignature(p, base64.StdEncoding.EncodeToString(raw))
	if err != nil {
		t.Fatal(err)
	}
	si, err := ociremote.SignedImage(dig, ociremote.WithRemoteOptions())
	if err != nil {
		t.Fatal(err)
	}
	si, err = ocimutate.AttachSignatureToImage(si, sig)
	if err != nil {
		t.Fatal(err)
	}
	if err := ociremote.WriteSignatures(repo, si); err != nil {
		t.Fatal(err)
	}

	// nos reads cosign's signature image by its tag and verifies it with
	// cosign's public key; nos also loads cosign's private key.
	sigImg, err := remote.Image(repo.Tag(Tag(dig.DigestStr())))
	if err != nil {
		t.Fatal(err)
	}
	sigs, err := FromImage(sigImg)
	if err != nil || len(sigs) != 1 {
		t.Fatalf("FromImage: %v, %v", sigs, err)
	}
	v, err := LoadVerifier(kp.PublicBytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := VerifyAny(v, sigs, dig.DigestStr()); err != nil {
		t.Errorf("nos refuses cosign's signature: %v", err)
	}
	if _, err := LoadSigner(kp.PrivateBytes, []byte("pw")); err != nil {
		t.Errorf("nos cannot load cosign's private key: %v", err)
	}
	if _, err := LoadSigner(kp.PrivateBytes, []byte("wrong")); !errors.Is(err, ErrBadPassword) {
		t.Errorf("a wrong password: %v", err)
	}
}

func TestCosignVerifiesWhatNosSigned(t *testing.T) {
	host := testRegistry(t)
	repo, dig := pushRandom(t, host)
	kp, err := GenerateKeyPair([]byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := LoadSigner(kp.Private, []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	sig, err := Sign(s, repo.Name(), dig.DigestStr())
	if err != nil {
		t.Fatal(err)
	}
	img, err := Image([]Signature{sig})
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(repo.Tag(Tag(dig.DigestStr())), img); err != nil {
		t.Fatal(err)
	}
	// cosign: its key loader reads nos's key files, and its verifier (the
	// one `cosign verify --key K --insecure-ignore-tlog` runs) accepts the
	// signature.
	if _, err := cosign.LoadPrivateKey(kp.Private, []byte("secret"), nil); err != nil {
		t.Errorf("cosign cannot load nos's private key: %v", err)
	}
	pub, err := cosign.PemToECDSAKey(kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	v, err := LoadVerifier(kp.Public)
	if err != nil {
		t.Fatal(err)
	}
	_ = pub
	checked, _, err := cosign.VerifyImageSignatures(context.Background(), dig, &cosign.CheckOpts{
		SigVerifier: v, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier,
	})
	if err != nil || len(checked) != 1 {
		t.Errorf("cosign refuses nos's signature: %v (%d checked)", err, len(checked))
	}
	// And a signature for another digest fails cosign's check too.
	_, other := pushRandom(t, host)
	if _, _, err := cosign.VerifyImageSignatures(context.Background(), other, &cosign.CheckOpts{SigVerifier: v, IgnoreTlog: true, ClaimVerifier: cosign.SimpleClaimVerifier}); err == nil {
		t.Error("cosign accepted an unsigned image")
	}
}
