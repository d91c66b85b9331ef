package instance

import (
	"errors"
	"net/netip"
	"path"
	"strings"
	"testing"
)

// FuzzParseVolume feeds -v any string: it fails with ErrBadFlag or gives
// exactly one mount on a clean absolute path, and a volume mount prints
// back (String) to what parses to itself.
func FuzzParseVolume(f *testing.F) {
	for _, s := range []string{"data:/var/lib/app", "data:/d:ro", "/srv:/srv:rw", "./x:/y", "a:b", "a:/:ro", ":/x", "a:/x:rx", "a::/x", "a:/x/../y", "/:/x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseVolume(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseVolume(%q): %v; want ErrBadFlag", s, err)
			}
			return
		}
		checkMount(t, s, m)
		if m.Volume != nil {
			again, err := ParseVolume(m.Volume.String())
			if err != nil || again.Volume == nil || *again.Volume != *m.Volume {
				t.Fatalf("ParseVolume(%q) = %+v; its String %q parses to %+v, %v", s, *m.Volume, m.Volume.String(), again.Volume, err)
			}
		}
	})
}

// FuzzParseMount does the same for --mount.
func FuzzParseMount(f *testing.F) {
	for _, s := range []string{"type=volume,source=data,target=/d", "type=bind,src=/srv,dst=/srv,readonly", "source=data,target=/d,ro=false", "type=tmpfs,target=/t", "target=/x", "type=volume,source=/abs,target=/x", "readonly=maybe", ",,,"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMount(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseMount(%q): %v; want ErrBadFlag", s, err)
			}
			return
		}
		checkMount(t, s, m)
	})
}

func checkMount(t *testing.T, s string, m Mount) {
	t.Helper()
	var target string
	switch {
	case m.Volume != nil && m.Bind == nil:
		target = m.Volume.Target
		if strings.ContainsAny(m.Volume.Name, ":/,\n") || m.Volume.Name == "" {
			t.Fatalf("%q: volume name %q", s, m.Volume.Name)
		}
	case m.Bind != nil && m.Volume == nil:
		target = m.Bind.Target
		if !path.IsAbs(m.Bind.Source) || path.Clean(m.Bind.Source) != m.Bind.Source {
			t.Fatalf("%q: bind source %q", s, m.Bind.Source)
		}
	default:
		t.Fatalf("%q: mount %+v is neither a volume nor a bind", s, m)
	}
	if !path.IsAbs(target) || path.Clean(target) != target || target == "/" {
		t.Fatalf("%q: mount point %q", s, target)
	}
}

// FuzzParseTmpfs: ErrBadFlag, or a path nos-init may mount over and a
// mode that is one.
func FuzzParseTmpfs(f *testing.F) {
	for _, s := range []string{"/scratch", "/scratch:size=8m", "/t:size=1g,mode=1777", "/proc/x", "/t:mode=99", "/t:size=-1", "/t:", "relative"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := ParseTmpfs(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseTmpfs(%q): %v; want ErrBadFlag", s, err)
			}
			return
		}
		if err := tm.CheckPath(); err != nil || tm.Mode > 0o7777 || tm.Size < 0 {
			t.Fatalf("ParseTmpfs(%q) = %+v (%v)", s, tm, err)
		}
	})
}

// FuzzParseAddHost: ErrBadFlag, or an entry that makes one clean line of
// the guest's /etc/hosts (no blank, newline or comment in it).
func FuzzParseAddHost(f *testing.F) {
	for _, s := range []string{"db:10.0.0.5", "host.nos.internal:host-gateway", "v6=[::1]", "a:fe80::1%eth0", "x", ":1.2.3.4", "-a:1.2.3.4", "a b:1.2.3.4", "a:1.2.3.4\n5.6.7.8 evil"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseAddHost(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseAddHost(%q): %v; want ErrBadFlag", s, err)
			}
			return
		}
		if !validHostName(h.Name) || strings.ContainsAny(h.Name+h.IP, " \t\r\n#") {
			t.Fatalf("ParseAddHost(%q) = %+v", s, h)
		}
		if h.IP != HostGateway {
			if a, err := netip.ParseAddr(h.IP); err != nil || a.Zone() != "" {
				t.Fatalf("ParseAddHost(%q): address %q", s, h.IP)
			}
		}
	})
}

// FuzzParseHostPorts: ErrBadFlag, or ports 1–65535.
func FuzzParseHostPorts(f *testing.F) {
	for _, s := range []string{"8080", "80,443", " 22 , 23", "0", "65536", "1,,2", "-1", "0x50"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ps, err := ParseHostPorts(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseHostPorts(%q): %v; want ErrBadFlag", s, err)
			}
			return
		}
		if len(ps) == 0 {
			t.Fatalf("ParseHostPorts(%q): no port and no error", s)
		}
		for _, p := range ps {
			if p == 0 {
				t.Fatalf("ParseHostPorts(%q): port 0", s)
			}
		}
	})
}
