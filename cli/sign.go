package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	sigsig "github.com/sigstore/sigstore/pkg/signature"

	"github.com/nosproject/nos/signature"
	"github.com/nosproject/nos/store"
)

// errUsage is wrapped by errors of verbs called the wrong way.
var errUsage = errors.New("see nos help")

func (e *env) signatures() (*signature.Local, error) {
	l, err := e.layout()
	if err != nil {
		return nil, err
	}
	return signature.OpenLocal(l.Signatures())
}

// keyPassword is the private key's password: $COSIGN_PASSWORD as cosign
// reads it (or $NOS_KEY_PASSWORD), else asked on the terminal, else none.
func (e *env) keyPassword(confirm bool) ([]byte, error) {
	for _, k := range []string{"NOS_KEY_PASSWORD", "COSIGN_PASSWORD"} {
		if v, ok := os.LookupEnv(k); ok {
			return []byte(v), nil
		}
	}
	f, ok := e.stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil, nil
	}
	fmt.Fprint(e.stderr, "Password for the private key: ")
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil || !confirm {
		return pw, err
	}
	fmt.Fprint(e.stderr, "Again: ")
	again, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(e.stderr)
	if err != nil {
		return nil, err
	}
	if string(again) != string(pw) {
		return nil, errors.New("the passwords differ")
	}
	return pw, nil
}

func newSignCmd(e *env) *cobra.Command {
	var keyPath string
	var generate bool
	cmd := &cobra.Command{
		Use:   "sign --key KEY IMAGE... | sign --generate-key [--key cosign.key]",
		Short: "Sign images with a cosign-compatible key (the signature goes with push and pull)",
		RunE: func(cmd *cobra.Command, args []string) error {
			if generate {
				return generateKey(e, keyPath, args)
			}
			if keyPath == "" || len(args) == 0 {
				return fmt.Errorf("want --key KEY and at least one IMAGE (or --generate-key to make a key pair): %w", errUsage)
			}
			s, err := e.loadSigner(keyPath)
			if err != nil {
				return err
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			sigs, err := e.signatures()
			if err != nil {
				return err
			}
			for _, ref := range args {
				im, err := st.Resolve(cmd.Context(), ref)
				if err != nil {
					return err
				}
				dgst := im.Manifest.Digest.String()
				sig, err := signature.Sign(s, im.Name, dgst)
				if err != nil {
					return err
				}
				if err := sigs.Add(cmd.Context(), dgst, sig); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Signed %s:%s (%s)\n", im.Name, im.Tag, dgst)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "private key file (cosign's format; password from $COSIGN_PASSWORD or the terminal)")
	cmd.Flags().BoolVar(&generate, "generate-key", false, "make a key pair: KEY (default cosign.key) and its .pub, as cosign generate-key-pair does")
	return cmd
}

func generateKey(e *env, keyPath string, args []string) error {
	if len(args) > 0 {
		return fmt.Errorf("--generate-key takes no image: %w", errUsage)
	}
	if keyPath == "" {
		keyPath = "cosign.key"
	}
	pubPath := strings.TrimSuffix(keyPath, ".key") + ".pub"
	for _, p := range []string{keyPath, pubPath} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s exists: nos does not overwrite keys; remove it or choose another --key", p)
		}
	}
	pw, err := e.keyPassword(true)
	if err != nil {
		return err
	}
	kp, err := signature.GenerateKeyPair(pw)
	if err != nil {
		return err
	}
	if err := os.WriteFile(keyPath, kp.Private, 0o600); err != nil {
		return err
	}
	if err := os.WriteFile(pubPath, kp.Public, 0o644); err != nil {
		os.Remove(keyPath)
		return err
	}
	fmt.Fprintf(e.stdout, "Private key written to %s\nPublic key written to %s\n", keyPath, pubPath)
	return nil
}

func newVerifyCmd(e *env) *cobra.Command {
	var keyPath string
	cmd := &cobra.Command{
		Use:   "verify --key PUB IMAGE...",
		Short: "Check that images carry a valid signature by a key",
		Args:  cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if keyPath == "" {
				return fmt.Errorf("want --key PUB (a public key, cosign's PEM): %w", errUsage)
			}
			st, err := e.store()
			if err != nil {
				return err
			}
			for _, ref := range args {
				im, err := st.Resolve(cmd.Context(), ref)
				if err != nil {
					return err
				}
				if err := e.verifyImage(im, keyPath); err != nil {
					return err
				}
				fmt.Fprintf(e.stdout, "Verified %s:%s (%s) with %s\n", im.Name, im.Tag, im.Manifest.Digest, keyPath)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyPath, "key", "", "public key file")
	return cmd
}

// loadSigner reads the private key at keyPath, asking its password.
func (e *env) loadSigner(keyPath string) (sigsig.Signer, error) {
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	pw, err := e.keyPassword(false)
	if err != nil {
		return nil, err
	}
	s, err := signature.LoadSigner(b, pw)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", keyPath, err)
	}
	return s, nil
}

// loadVerifier reads the public key at keyPath.
func loadVerifier(keyPath string) (sigsig.Verifier, error) {
	b, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("verify key: %w", err)
	}
	v, err := signature.LoadVerifier(b)
	if err != nil {
		return nil, fmt.Errorf("verify key %s: %w", keyPath, err)
	}
	return v, nil
}

// verifyImage checks im's local signatures against each public key.
func (e *env) verifyImage(im store.Image, keys ...string) error {
	l, err := e.signatures()
	if err != nil {
		return err
	}
	dgst := im.Manifest.Digest.String()
	sigs, err := l.Get(dgst)
	if err != nil {
		return err
	}
	return requireSignatures(keys, sigs, dgst, im.Name+":"+im.Tag)
}

// policy is $NOS_HOME/policy.json: images whose name starts with a
// scope must be signed by its key before they run or are pulled.
//
//	{"require": [{"scope": "registry.example:5000/team/", "key": "/etc/nos/team.pub"}]}
type policy struct {
	Require []struct {
		Scope string `json:"scope"`
		Key   string `json:"key"`
	} `json:"require"`
}

// policyKeys are the keys the policy asks of image name.
func (e *env) policyKeys(name string) ([]string, error) {
	l, err := e.layout()
	if err != nil {
		return nil, err
	}
	f, err := os.Open(l.Policy())
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var p policy
	dec := json.NewDecoder(bufio.NewReader(io.LimitReader(f, 1<<20)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%s: %w", l.Policy(), err)
	}
	var keys []string
	for _, r := range p.Require {
		if r.Scope == "" || r.Key == "" {
			return nil, fmt.Errorf("%s: each entry needs a scope and a key", l.Policy())
		}
		if strings.HasPrefix(name, r.Scope) || r.Scope == "*" {
			keys = append(keys, r.Key)
		}
	}
	return keys, nil
}

// checkSigned refuses im unless it is signed by verifyKey (if given) and
// by every key the policy asks of its name.
func (e *env) checkSigned(im store.Image, verifyKey string) error {
	keys, err := e.requiredKeys(im.Name, verifyKey)
	if err != nil || len(keys) == 0 {
		return err
	}
	return e.verifyImage(im, keys...)
}

// requiredKeys are the public keys an image named name must be signed
// by: the policy's for that name, and verifyKey when given.
func (e *env) requiredKeys(name, verifyKey string) ([]string, error) {
	keys, err := e.policyKeys(name)
	if err != nil {
		return nil, err
	}
	if verifyKey != "" {
		keys = append(keys, verifyKey)
	}
	return keys, nil
}

// requireSignatures refuses the manifest dgst (of the image what) unless
// sigs hold a valid signature by each of keys.
func requireSignatures(keys []string, sigs []signature.Signature, dgst, what string) error {
	for _, k := range keys {
		v, err := loadVerifier(k)
		if err != nil {
			return err
		}
		if err := signature.VerifyAny(v, sigs, dgst); err != nil {
			return fmt.Errorf("%s refused: %w", what, err)
		}
	}
	return nil
}
