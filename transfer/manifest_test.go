package transfer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// TestDistributionManifest checks the manifest a push sends, byte for
// byte, against testdata/manifest.golden.json.
func TestDistributionManifest(t *testing.T) {
	st := newStore(t)
	fakeImage(t, st, "web", "1", "a")
	l, err := readLocal(context.Background(), st, "web:1")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := distributionManifest(l.man, l.config, l.img.Created)
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	pretty.WriteByte('\n')
	golden := filepath.Join("testdata", "manifest.golden.json")
	if *update {
		if err := os.WriteFile(golden, pretty.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(pretty.Bytes(), want) {
		t.Errorf("manifest differs from %s (go test -update rewrites it):\n%s", golden, pretty.Bytes())
	}
	// What was pushed is a nos image to whoever pulls it, and pushing it
	// again gives the same bytes.
	man, err := parseManifest("web:1", "web:1", raw)
	if err != nil {
		t.Fatal(err)
	}
	again, err := distributionManifest(man, l.config, createdOf(man))
	if err != nil || !bytes.Equal(again, raw) {
		t.Errorf("pushing what was pulled changes the manifest:\n%s\n%s", raw, again)
	}
}

func TestParseManifestRefusesOthers(t *testing.T) {
	cases := map[string]string{
		"container image": `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"sha256:` + zeros + `","size":1},"layers":[]}`,
		"docker image":    `{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.v2+json","config":{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"sha256:` + zeros + `","size":1},"layers":[]}`,
		"index":           `{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}`,
	}
	for name, raw := range cases {
		if _, err := parseManifest("x", "x", []byte(raw)); !errors.Is(err, ErrNotNosImage) {
			t.Errorf("%s: got %v, want ErrNotNosImage", name, err)
		}
	}
	bad := map[string]string{
		"not JSON":     `{`,
		"no kernel":    `{"schemaVersion":2,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"sha256:` + zeros + `","size":1},"layers":[]}`,
		"bad digest":   `{"schemaVersion":2,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"md5:00","size":1},"layers":[]}`,
		"other layer":  `{"schemaVersion":2,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"sha256:` + zeros + `","size":1},"layers":[{"mediaType":"text/plain","digest":"sha256:` + zeros + `","size":1}]}`,
		"negative":     `{"schemaVersion":2,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"sha256:` + zeros + `","size":-1},"layers":[]}`,
		"schema 1":     `{"schemaVersion":1,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"sha256:` + zeros + `","size":1}}`,
		"huge config":  `{"schemaVersion":2,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"sha256:` + zeros + `","size":99999999999},"layers":[]}`,
		"path in hash": `{"schemaVersion":2,"config":{"mediaType":"application/vnd.nos.image.config.v1+json","digest":"sha256:../../etc/passwd","size":1},"layers":[]}`,
	}
	for name, raw := range bad {
		if _, err := parseManifest("x", "x", []byte(raw)); err == nil || errors.Is(err, ErrNotNosImage) {
			t.Errorf("%s: got %v, want an error other than ErrNotNosImage", name, err)
		}
	}
}

const zeros = "0000000000000000000000000000000000000000000000000000000000000000"
