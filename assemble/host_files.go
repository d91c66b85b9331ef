package assemble

import (
	"archive/zip"
	"bytes"
	"debug/buildinfo"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"syscall"

	"github.com/nosproject/nos/initramfs"
)

// etcFiles are the few files programs look for in /etc.
var etcFiles = map[string]string{
	"passwd":        "root:x:0:0:root:/root:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n",
	"group":         "root:x:0:\nnogroup:x:65534:\n",
	"nsswitch.conf": "hosts: files dns\n",
}

// Host files that make TLS and time zones work in the guest, when the host
// has them.
const (
	hostCABundle = "/etc/ssl/certs/ca-certificates.crt"
	hostZoneinfo = "/usr/share/zoneinfo"
	// zoneinfoZip is where Go programs find the time zones.
	zoneinfoZip = "/usr/share/zoneinfo.zip"
)

// zoneinfoSkip are the parts of the host's zoneinfo left out: right/ holds
// the zones again with leap seconds, which programs do not use unless
// told to.
var zoneinfoSkip = []string{"right"}

func addHostExtras(a *initramfs.Archive, goApp bool) error {
	if _, err := os.Stat(hostCABundle); err == nil {
		if err := a.AddHostFile(hostCABundle, hostCABundle, 0o644); err != nil {
			return fmt.Errorf("adding CA certificates: %w", err)
		}
	}
	fi, err := os.Stat(hostZoneinfo)
	if err != nil || !fi.IsDir() {
		return nil
	}
	if goApp {
		b, err := zipZoneinfo(hostZoneinfo)
		if err != nil {
			return fmt.Errorf("adding zoneinfo: %w", err)
		}
		return a.AddFile(zoneinfoZip, 0o644, b)
	}
	if err := a.AddHostTree(hostZoneinfo, hostZoneinfo, zoneinfoSkip...); err != nil {
		return fmt.Errorf("adding zoneinfo: %w", err)
	}
	return nil
}

// zipZoneinfo packs the time zone files under dir into an uncompressed zip
// as Go's time package reads it (ZONEINFO): one entry per zone name,
// aliases (symlinks) included, in a fixed order and with no times, so the
// same host files give the same bytes.
func zipZoneinfo(dir string) ([]byte, error) {
	var names []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if d.IsDir() && slices.Contains(zoneinfoSkip, rel) {
			return filepath.SkipDir
		}
		if !d.IsDir() {
			names = append(names, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.Sort(names)
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for _, name := range names {
		b, err := os.ReadFile(filepath.Join(dir, name)) // follows aliases
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.EISDIR) {
				continue // a dangling or directory alias
			}
			return nil, err
		}
		if !bytes.HasPrefix(b, []byte("TZif")) {
			continue // tables such as zone.tab: not zones
		}
		w, err := zw.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Store})
		if err != nil {
			return nil, err
		}
		if _, err := w.Write(b); err != nil {
			return nil, err
		}
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// isGoBinary reports whether the executable at path was built by Go.
func isGoBinary(path string) bool {
	_, err := buildinfo.ReadFile(path)
	return err == nil
}
