package e2e

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// TestSignVerifyAndRunPolicy: an image signed with a key nos made runs
// with --verify-key; an unsigned image, one signed by another key, and
// one whose only signature is another image's are refused before anything
// is made (no instance, no QEMU); the policy file asks the same of nos run
// without the flag.
func TestSignVerifyAndRunPolicy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.env = append(e.env, "COSIGN_PASSWORD=test-password")
	e.build("signed", "./examples/hello")
	e.build("unsigned", "./e2e/testdata/probe")
	keys := t.TempDir()
	for _, k := range []string{"a", "b"} {
		if r := e.nos("sign", "--generate-key", "--key", filepath.Join(keys, k+".key")); r.code != 0 {
			t.Fatalf("generate-key: %v", r)
		}
	}
	if r := e.nos("sign", "--generate-key", "--key", filepath.Join(keys, "a.key")); r.code == 0 {
		t.Errorf("generate-key overwrote a key: %v", r)
	}
	if r := e.nos("sign", "--key", filepath.Join(keys, "a.key"), "signed"); r.code != 0 {
		t.Fatalf("sign: %v", r)
	}
	pubA, pubB := filepath.Join(keys, "a.pub"), filepath.Join(keys, "b.pub")
	if r := e.nos("verify", "--key", pubA, "signed"); r.code != 0 {
		t.Errorf("verify: %v", r)
	}
	if r := e.run("--rm", "--verify-key", pubA, "signed"); r.code != 0 || !strings.Contains(r.stdout, "Hello") {
		t.Errorf("run --verify-key of a signed image: %v", r)
	}
	// A wrong password is named.
	wrong := &nosEnv{t: t, home: e.home, env: append(envWithout("NOS_HOME"), "NOS_HOME="+e.home, "COSIGN_PASSWORD=nope")}
	if r := wrong.nos("sign", "--key", filepath.Join(keys, "a.key"), "unsigned"); r.code == 0 || !strings.Contains(r.stderr, "wrong password") {
		t.Errorf("sign with a wrong password: %v", r)
	}
	// Another image's signature, placed as this one's: refused for its digest.
	sigDir := filepath.Join(e.home, "signatures")
	des, _ := os.ReadDir(sigDir)
	var signedSig string
	for _, d := range des {
		if strings.HasSuffix(d.Name(), ".json") {
			signedSig = filepath.Join(sigDir, d.Name())
		}
	}
	b, err := os.ReadFile(signedSig)
	if err != nil {
		t.Fatal(err)
	}
	unsignedDigest := e.imageDigest("unsigned")
	for _, c := range []struct {
		name, key, image, want string
		prepare                func()
	}{
		{"unsigned", pubA, "unsigned", "no signature", nil},
		{"signed by another key", pubB, "signed", "not match the key", nil},
		{"another image's signature", pubA, "unsigned", "is for sha256:", func() {
			if err := os.WriteFile(filepath.Join(sigDir, strings.TrimPrefix(unsignedDigest, "sha256:")+".json"), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		if c.prepare != nil {
			c.prepare()
		}
		r := e.run("--rm", "--verify-key", c.key, c.image)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: want one line with %q, got %v", c.name, c.want, r)
		}
		if ps := e.nos("ps", "-aq"); strings.TrimSpace(ps.stdout) != "" {
			t.Errorf("%s: an instance was made: %v", c.name, ps)
		}
	}
	// The policy file: images named un* need key a.
	if err := os.WriteFile(filepath.Join(e.home, "policy.json"), []byte(`{"require":[{"scope":"un","key":"`+pubA+`"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(sigDir, strings.TrimPrefix(unsignedDigest, "sha256:")+".json"))
	if r := e.run("--rm", "unsigned", "exit", "0"); r.code == 0 || !strings.Contains(r.stderr, "no signature") {
		t.Errorf("the policy did not refuse an unsigned image: %v", r)
	}
	if r := e.run("--rm", "signed"); r.code != 0 {
		t.Errorf("the policy refused an image out of its scope: %v", r)
	}
}

// TestSignedImagesTravel: an image signed as it is pushed reaches another
// store with its signature through a real registry (Debian's
// docker-registry on loopback); that store pulls it with --verify-key and
// boots it; an unsigned image, and the signed one checked against another
// key, are refused by pull before anything enters the store.
func TestSignedImagesTravel(t *testing.T) {
	t.Parallel()
	reg := startRegistryWith(t, "")
	a := registryEnv(t)
	a.env = append(a.env, "COSIGN_PASSWORD=pw")
	a.build("hello", "./examples/hello")
	a.build("plain", "./examples/httpserver")
	keys := t.TempDir()
	for _, k := range []string{"team", "other"} {
		if r := a.nos("sign", "--generate-key", "--key", filepath.Join(keys, k+".key")); r.code != 0 {
			t.Fatal(r)
		}
	}
	signed, plain := reg.addr+"/team/hello:1", reg.addr+"/team/plain:1"
	if r := a.nos("push", "--sign-key", filepath.Join(keys, "team.key"), "hello", signed); r.code != 0 || !strings.Contains(r.stdout, "1 signature(s) pushed") {
		t.Fatalf("push --sign-key: %v", r)
	}
	if r := a.nos("push", "plain", plain); r.code != 0 || !strings.Contains(r.stdout, "bill of materials (application/spdx+json)") {
		t.Fatalf("push: %v", r)
	}
	// The bill of materials is an OCI referrer of the pushed manifest.
	ref, err := name.ParseReference(plain, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	desc, err := remote.Head(ref)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := remote.Referrers(ref.Context().Digest(desc.Digest.String()))
	if err != nil {
		t.Fatal(err)
	}
	im, _ := idx.IndexManifest()
	if len(im.Manifests) != 1 || im.Manifests[0].ArtifactType != "application/spdx+json" {
		t.Errorf("referrers of the pushed image: %+v", im)
	}
	pub, other := filepath.Join(keys, "team.pub"), filepath.Join(keys, "other.pub")

	b := registryEnv(t)
	if r := b.nos("pull", "--verify-key", pub, signed); r.code != 0 || !strings.Contains(r.stdout, "Signatures: 1") {
		t.Fatalf("pull --verify-key of a signed image: %v", r)
	}
	if r := b.nos("verify", "--key", pub, signed); r.code != 0 {
		t.Errorf("verify after pull: %v", r)
	}
	if r := b.run("--rm", "--verify-key", pub, signed); r.code != 0 || !strings.Contains(r.stdout, "Hello") {
		t.Errorf("run --verify-key of the pulled image: %v", r)
	}
	for _, c := range []struct{ name, key, ref, want string }{
		{"unsigned", pub, plain, "no signature"},
		{"another key", other, signed, "not match the key"},
	} {
		fresh := registryEnv(t)
		r := fresh.nos("pull", "--verify-key", c.key, c.ref)
		if r.code == 0 || !strings.Contains(r.stderr, c.want) || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("%s: want one line with %q, got %v", c.name, c.want, r)
		}
		if imgs := fresh.nos("images", "-q"); strings.TrimSpace(imgs.stdout) != "" {
			t.Errorf("%s: the refused image entered the store: %v", c.name, imgs)
		}
		// nos run pulls through the same check.
		if r := fresh.run("--rm", "--verify-key", c.key, c.ref, "exit", "0"); r.code == 0 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s: run of a refused image: %v", c.name, r)
		}
	}
}

// TestBuildReproduce: nos build --reproduce rebuilds a Go program and a
// dynamic program (a root disk) in an empty store and finds the same
// digests.
func TestBuildReproduce(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, src := range []string{"./examples/httpserver", needProgram(t, "true")} {
		r := e.nos("build", "--kernel", kernelPath, "--reproduce", "-t", "rep", src)
		if r.code != 0 || !strings.Contains(r.stderr, "reproduced: a second build in an empty store has the same digest "+strings.TrimSpace(r.stdout)) {
			t.Errorf("build --reproduce %s: %v", src, r)
		}
	}
}
