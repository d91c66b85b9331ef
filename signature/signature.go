// Package signature signs and verifies nos images the way cosign signs
// container images, so that each tool verifies what the other signed:
//
//   - keys are cosign's: an ECDSA P-256 key, PKCS #8, encrypted with
//     scrypt and NaCl secretbox (go-securesystemslib's "encrypted"),
//     PEM type "ENCRYPTED SIGSTORE PRIVATE KEY" (cosign's older
//     "ENCRYPTED COSIGN PRIVATE KEY" is read too); public keys are PKIX PEM;
//   - what is signed is the "simple signing" payload (sigstore's
//     payload.Cosign): the repository the signer names and the manifest
//     digest of the image;
//   - a signature travels as an OCI image whose layers are payloads (media
//     type application/vnd.dev.cosign.simplesigning.v1+json), each with
//     its base64 signature in the annotation dev.cosignproject.cosign/signature,
//     tagged sha256-<hex>.sig next to the image in a registry.
//
// The cryptography is sigstore's (sigstore/pkg/signature, cryptoutils);
// nothing here signs or hashes by hand. No transparency log is used: a
// key is trusted or not (cosign verifies these with --insecure-ignore-tlog).
package signature

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
	sigsig "github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/payload"
)

// Media type and annotation of cosign's signatures.
const (
	PayloadMediaType    = "application/vnd.dev.cosign.simplesigning.v1+json"
	SignatureAnnotation = "dev.cosignproject.cosign/signature"
)

// PEM types of private keys, as cosign writes them.
const (
	SigstorePrivateKeyPEM = "ENCRYPTED SIGSTORE PRIVATE KEY"
	CosignPrivateKeyPEM   = "ENCRYPTED COSIGN PRIVATE KEY"
)

// Errors callers can test for with errors.Is.
var (
	ErrBadKey      = errors.New("not a usable key")
	ErrBadPassword = errors.New("wrong password for the key")
	ErrInvalid     = errors.New("invalid signature")
	ErrUnsigned    = errors.New("no signature")
)

// KeyPair is a new key pair in cosign's formats.
type KeyPair struct {
	Private []byte // encrypted PEM
	Public  []byte // PEM
}

// GenerateKeyPair makes an ECDSA P-256 key pair whose private half is
// encrypted with password (which may be empty, as cosign allows).
func GenerateKeyPair(password []byte) (*KeyPair, error) {
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return nil, err
	}
	enc, err := encrypted.Encrypt(der, password)
	if err != nil {
		return nil, fmt.Errorf("encrypting the key: %w", err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return nil, err
	}
	return &KeyPair{Private: pem.EncodeToMemory(&pem.Block{Type: SigstorePrivateKeyPEM, Bytes: enc}), Public: pub}, nil
}

// LoadSigner reads an encrypted private key of cosign's.
func LoadSigner(pemBytes, password []byte) (sigsig.Signer, error) {
	b, _ := pem.Decode(pemBytes)
	if b == nil {
		return nil, fmt.Errorf("private key: no PEM block: %w", ErrBadKey)
	}
	if b.Type != SigstorePrivateKeyPEM && b.Type != CosignPrivateKeyPEM {
		return nil, fmt.Errorf("private key: PEM type %q, want %q (cosign generate-key-pair or nos sign --generate-key): %w", b.Type, SigstorePrivateKeyPEM, ErrBadKey)
	}
	der, err := encrypted.Decrypt(b.Bytes, password)
	if err != nil {
		return nil, fmt.Errorf("private key: %w", ErrBadPassword)
	}
	k, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, fmt.Errorf("private key: %v: %w", err, ErrBadKey)
	}
	s, err := sigsig.LoadSigner(k, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("private key: %v: %w", err, ErrBadKey)
	}
	return s, nil
}

// LoadVerifier reads a PEM public key.
func LoadVerifier(pemBytes []byte) (sigsig.Verifier, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("public key: %v: %w", err, ErrBadKey)
	}
	v, err := sigsig.LoadVerifier(pub, crypto.SHA256)
	if err != nil {
		return nil, fmt.Errorf("public key: %v: %w", err, ErrBadKey)
	}
	return v, nil
}

// Signature is one signed payload, as it travels.
type Signature struct {
	Payload []byte `json:"payload"`   // the simple-signing JSON
	Base64  string `json:"signature"` // its signature, base64 (cosign's annotation)
}

// Payload is the simple-signing payload for the image with manifest
// digest dgst in repository repo (e.g. "registry:5000/team/web").
func Payload(repo, dgst string) ([]byte, error) {
	d, err := name.NewDigest(repo+"@"+dgst, name.WeakValidation)
	if err != nil {
		return nil, fmt.Errorf("signing %s@%s: %w", repo, dgst, err)
	}
	return json.Marshal(payload.Cosign{Image: d})
}

// Sign signs the image with manifest digest dgst in repository repo.
func Sign(s sigsig.Signer, repo, dgst string) (Signature, error) {
	p, err := Payload(repo, dgst)
	if err != nil {
		return Signature{}, err
	}
	sig, err := s.SignMessage(bytes.NewReader(p))
	if err != nil {
		return Signature{}, fmt.Errorf("signing: %w", err)
	}
	return Signature{Payload: p, Base64: base64.StdEncoding.EncodeToString(sig)}, nil
}

// Verify checks that sig is v's signature of a payload naming the manifest
// digest dgst; it returns the repository the payload claims.
func Verify(v sigsig.Verifier, sig Signature, dgst string) (repo string, err error) {
	raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(sig.Base64))
	if err != nil {
		return "", fmt.Errorf("signature is not base64: %w", ErrInvalid)
	}
	if err := v.VerifySignature(bytes.NewReader(raw), bytes.NewReader(sig.Payload)); err != nil {
		return "", fmt.Errorf("signature does not match the key: %w", ErrInvalid)
	}
	var p payload.SimpleContainerImage
	if err := json.Unmarshal(sig.Payload, &p); err != nil {
		return "", fmt.Errorf("signed payload: %v: %w", err, ErrInvalid)
	}
	if p.Critical.Type != payload.CosignSignatureType {
		return "", fmt.Errorf("signed payload of type %q: %w", p.Critical.Type, ErrInvalid)
	}
	if p.Critical.Image.DockerManifestDigest != dgst {
		return "", fmt.Errorf("the signature is for %s, not %s: %w", p.Critical.Image.DockerManifestDigest, dgst, ErrInvalid)
	}
	return p.Critical.Identity.DockerReference, nil
}

// VerifyAny returns nil when one of sigs is a valid signature by v of
// dgst, else why none is.
func VerifyAny(v sigsig.Verifier, sigs []Signature, dgst string) error {
	if len(sigs) == 0 {
		return fmt.Errorf("image %s: %w", dgst, ErrUnsigned)
	}
	var last error
	for _, s := range sigs {
		if _, err := Verify(v, s, dgst); err == nil {
			return nil
		} else {
			last = err
		}
	}
	return fmt.Errorf("image %s: none of its %d signatures is valid for the key: %w", dgst, len(sigs), last)
}

// Tag is the tag cosign gives the signatures of the image with manifest
// digest dgst: "sha256-<hex>.sig".
func Tag(dgst string) string {
	return strings.Replace(dgst, ":", "-", 1) + ".sig"
}
