package e2e

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// spdxDoc is the part of an SPDX JSON document the tests read.
type spdxDoc struct {
	Packages []struct {
		ID           string `json:"SPDXID"`
		Name         string `json:"name"`
		Version      string `json:"versionInfo"`
		FileName     string `json:"packageFileName"`
		Comment      string `json:"comment"`
		ExternalRefs []struct {
			Locator string `json:"referenceLocator"`
		} `json:"externalRefs"`
	} `json:"packages"`
	Relationships []struct {
		A    string `json:"spdxElementId"`
		B    string `json:"relatedSpdxElement"`
		Type string `json:"relationshipType"`
	} `json:"relationships"`
	Files []struct {
		Name      string `json:"fileName"`
		Checksums []struct {
			Algorithm string `json:"algorithm"`
			Value     string `json:"checksumValue"`
		} `json:"checksums"`
	} `json:"files"`
}

func (e *nosEnv) spdx(ref string) (spdxDoc, string) {
	e.t.Helper()
	r := e.nos("sbom", ref)
	var d spdxDoc
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &d) != nil {
		e.t.Fatalf("nos sbom %s: %v", ref, r)
	}
	return d, r.stdout
}

// deps lists the purls of what the program at path depends on.
func (d spdxDoc) deps(path string) []string {
	purls, id := map[string]string{}, ""
	for _, p := range d.Packages {
		if p.FileName == path {
			id = p.ID
		}
		for _, r := range p.ExternalRefs {
			purls[p.ID] = r.Locator
		}
	}
	var out []string
	for _, r := range d.Relationships {
		if r.A == id && r.Type == "DEPENDS_ON" {
			out = append(out, purls[r.B])
		}
	}
	slices.Sort(out)
	return out
}

// versions maps each package name to the versions listed.
func (d spdxDoc) versions() map[string][]string {
	m := map[string][]string{}
	for _, p := range d.Packages {
		m[p.Name] = append(m[p.Name], p.Version)
	}
	return m
}

// requiredVersion is the version of a module nos builds with.
func requiredVersion(t *testing.T, mod string) string {
	t.Helper()
	cmd := exec.Command("go", "list", "-m", "-f", "{{.Version}}", mod)
	cmd.Dir = repoRoot
	out, err := cmd.Output()
	if err != nil || len(out) == 0 {
		t.Fatalf("go list -m %s: %v", mod, err)
	}
	return strings.TrimSpace(string(out))
}

// TestSBOMGoApps: the SBOM of the example HTTP server (standard library
// only) and of the probe (golang.org/x/sys) list their main module, Go
// version and modules, and nos-init's own; the same image gives the
// same bytes, in both formats.
func TestSBOMGoApps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.build("httpserver", "./examples/httpserver")
	e.build("probe", "./e2e/testdata/probe")
	goVersion, err := exec.Command("go", "env", "GOVERSION").Output()
	if err != nil {
		t.Fatal(err)
	}
	sys, netlink := requiredVersion(t, "golang.org/x/sys"), requiredVersion(t, "github.com/vishvananda/netlink")
	std := "pkg:golang/stdlib@" + strings.TrimSpace(string(goVersion))

	for _, tc := range []struct {
		image, app string
		appMods    []string
	}{
		{"httpserver", "/app/httpserver", []string{std}},
		{"probe", "/app/probe", []string{"pkg:golang/golang.org/x/sys@" + sys, std}},
	} {
		d, raw := e.spdx(tc.image)
		v := d.versions()
		if !slices.Contains(v["stdlib"], strings.TrimSpace(string(goVersion))) {
			t.Errorf("%s: stdlib %v, want %s", tc.image, v["stdlib"], goVersion)
		}
		if !slices.Contains(v["golang.org/x/sys"], sys) || !slices.Contains(v["github.com/vishvananda/netlink"], netlink) {
			t.Errorf("%s: nos-init's modules x/sys %v, netlink %v; want %s, %s", tc.image, v["golang.org/x/sys"], v["github.com/vishvananda/netlink"], sys, netlink)
		}
		var roles []string
		for _, p := range d.Packages {
			if p.FileName == "/init" && strings.Contains(p.Comment, "nos:role: nos-init") || p.FileName == tc.app && strings.Contains(p.Comment, "nos:role: application") {
				roles = append(roles, p.FileName)
				if p.Name != "github.com/nosproject/nos" {
					t.Errorf("%s: %s's main module is %s", tc.image, p.FileName, p.Name)
				}
			}
		}
		if len(roles) != 2 {
			t.Errorf("%s: programs with roles %v, want /init and %s", tc.image, roles, tc.app)
		}
		if got := d.deps(tc.app); !slices.Equal(got, tc.appMods) {
			t.Errorf("%s: the application depends on %q, want %q", tc.image, got, tc.appMods)
		}
		if _, again := e.spdx(tc.image); again != raw {
			t.Errorf("%s: two SBOMs of the same image differ", tc.image)
		}
	}
	out := filepath.Join(t.TempDir(), "probe.cdx.json")
	if r := e.nos("sbom", "--format", "cyclonedx-json", "-o", out, "probe"); r.code != 0 || r.stdout != "" {
		t.Fatalf("sbom -o: %v", r)
	}
	b, _ := os.ReadFile(out)
	var bom struct {
		BOMFormat  string `json:"bomFormat"`
		Components []struct {
			Purl string `json:"purl"`
		} `json:"components"`
	}
	if err := json.Unmarshal(b, &bom); err != nil || bom.BOMFormat != "CycloneDX" || !strings.Contains(string(b), `"purl": "pkg:golang/golang.org/x/sys@`+sys+`"`) {
		t.Errorf("cyclonedx: %v\n%.2000s", err, b)
	}
	if r := e.nos("sbom", "--format", "xml", "probe"); r.code == 0 || !strings.Contains(r.stderr, "spdx-json or cyclonedx-json") {
		t.Errorf("bad format: %v", r)
	}
	if r := e.nos("sbom", "nosuch"); r.code == 0 {
		t.Errorf("missing image: %v", r)
	}
}

// TestSBOMNginx: the SBOM of Debian's nginx lists the libraries it took
// from the host with their Debian packages and the versions dpkg has,
// and the files added with --add with their checksums.
func TestSBOMNginx(t *testing.T) {
	t.Parallel()
	nginx := needProgram(t, "/usr/sbin/nginx")
	needProgram(t, "mkfs.erofs")
	needProgram(t, "fsck.erofs")
	needProgram(t, "dpkg-query")
	e := newEnv(t)
	e.withBlkKernel()
	conf := filepath.Join(t.TempDir(), "nginx.conf")
	writeFile(t, conf, nginxConf, 0o644)
	e.buildTree("-t", "nginx", "--user", "33:33", "--port", "8080", "--add", conf+":/etc/nginx/nginx.conf",
		"--entrypoint", `["/usr/sbin/nginx","-e","stderr"]`, nginx)

	d, _ := e.spdx("nginx")
	v := d.versions()
	for _, pkg := range []string{"libc6", "libpcre2-8-0", "libssl3", "zlib1g"} {
		out, err := exec.Command("dpkg-query", "-W", "-f", "${Version}", pkg).Output()
		if err != nil {
			t.Fatalf("dpkg-query %s: %v", pkg, err)
		}
		if want := string(out); !slices.Contains(v[pkg], want) {
			t.Errorf("package %s: versions %v, want %s (dpkg-query)", pkg, v[pkg], want)
		}
	}
	var sum string
	for _, f := range d.Files {
		if f.Name == "./etc/nginx/nginx.conf" {
			for _, c := range f.Checksums {
				if c.Algorithm == "SHA256" {
					sum = c.Value
				}
			}
		}
	}
	b, _ := os.ReadFile(conf)
	h := sha256.Sum256(b)
	if want := hex.EncodeToString(h[:]); sum != want {
		t.Errorf("added nginx.conf: sha256 %q, want %s", sum, want)
	}
	if !strings.Contains(strings.Join(v["linux"], " "), "nos") {
		t.Errorf("kernel %v, want nos's built kernel", v["linux"])
	}
}
