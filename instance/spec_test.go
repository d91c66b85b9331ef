package instance

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/nosproject/nos/guestapi"
	"github.com/nosproject/nos/image"
	"github.com/nosproject/nos/vmm"
)

// publishCases are shared by the table test and the fuzzer's seed corpus.
var publishCases = []struct {
	in      string
	want    vmm.Forward
	wantErr string // substring of the error; "" means success
	bug     string // known bug: the case is skipped, with this reason
}{
	{in: "8080:80", want: vmm.Forward{Proto: "tcp", HostPort: 8080, GuestPort: 80}},
	{in: "8080:80/tcp", want: vmm.Forward{Proto: "tcp", HostPort: 8080, GuestPort: 80}},
	{in: "53:53/udp", want: vmm.Forward{Proto: "udp", HostPort: 53, GuestPort: 53}},
	{in: "5353:53/UDP", want: vmm.Forward{Proto: "udp", HostPort: 5353, GuestPort: 53}},
	{in: "1:65535", want: vmm.Forward{Proto: "tcp", HostPort: 1, GuestPort: 65535}},
	{in: "127.0.0.1:8080:80", want: vmm.Forward{Proto: "tcp", HostIP: "127.0.0.1", HostPort: 8080, GuestPort: 80}},
	{in: "0.0.0.0:9000:9000/udp", want: vmm.Forward{Proto: "udp", HostIP: "0.0.0.0", HostPort: 9000, GuestPort: 9000}},
	{in: "192.168.1.10:443:8443/tcp", want: vmm.Forward{Proto: "tcp", HostIP: "192.168.1.10", HostPort: 443, GuestPort: 8443}},

	{in: "", wantErr: "missing host port"},
	{in: "80", wantErr: "missing host port"},
	{in: "80/tcp", wantErr: "missing host port"},
	{in: "8080:80/sctp", wantErr: "protocol must be tcp or udp"},
	{in: "8080:80/", wantErr: "protocol must be tcp or udp"},
	{in: "8080:80/tcp/udp", wantErr: "guest port"},
	{in: "0:80", wantErr: "host port \"0\" is not a port number"},
	{in: "8080:0", wantErr: "guest port \"0\" is not a port number"},
	{in: "65536:80", wantErr: "not a port number"},
	{in: "8080:65536", wantErr: "not a port number"},
	{in: "-1:80", wantErr: "not a port number"},
	{in: "http:80", wantErr: "not a port number"},
	{in: "8080:http", wantErr: "not a port number"},
	{in: ":80", wantErr: "not a port number"},
	{in: "8080:", wantErr: "not a port number"},
	{in: "8080:80 ", wantErr: "not a port number"},
	{in: "99999999999999999999:80", wantErr: "not a port number"},
	{in: "localhost:8080:80", wantErr: "not an IPv4 address"},
	{in: "::1:8080:80", wantErr: "not an IPv4 address"},
	{in: "[::1]:8080:80", wantErr: "not an IPv4 address"},
	{in: "1.2.3.4.5:8080:80", wantErr: "not an IPv4 address"},
	{in: "256.0.0.1:8080:80", wantErr: "not an IPv4 address"},
	{in: "1.2.3.4:x:80", wantErr: "not a port number"},

	// An IPv4-mapped IPv6 address passes the To4 check, but QEMU's
	// hostfwd=tcp:ADDR:PORT-… syntax cannot hold its colons.
	{in: "::ffff:127.0.0.1:8080:80", wantErr: "not an IPv4 address"},
}

func TestParsePublish(t *testing.T) {
	for _, tc := range publishCases {
		t.Run(tc.in, func(t *testing.T) {
			if tc.bug != "" {
				t.Skip("known bug: " + tc.bug)
			}
			got, err := ParsePublish(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParsePublish(%q) = %+v, want an error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrBadFlag) {
					t.Errorf("ParsePublish(%q) error %q does not wrap ErrBadFlag", tc.in, err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParsePublish(%q) error %q, want it to contain %q", tc.in, err, tc.wantErr)
				}
				if got != (vmm.Forward{}) {
					t.Errorf("ParsePublish(%q) returned %+v with its error, want the zero Forward", tc.in, got)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParsePublish(%q): %v", tc.in, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ParsePublish(%q) mismatch (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func FuzzParsePublish(f *testing.F) {
	for _, tc := range publishCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParsePublish(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParsePublish(%q) error %q does not wrap ErrBadFlag", s, err)
			}
			return
		}
		if got.HostPort < 1 || got.HostPort > 65535 || got.GuestPort < 1 || got.GuestPort > 65535 {
			t.Fatalf("ParsePublish(%q) = %+v: port out of 1-65535", s, got)
		}
		if got.Proto != "tcp" && got.Proto != "udp" {
			t.Fatalf("ParsePublish(%q) = %+v: protocol not tcp or udp", s, got)
		}
		if got.HostIP != "" {
			if ip := net.ParseIP(got.HostIP); ip == nil || ip.To4() == nil {
				t.Fatalf("ParsePublish(%q) = %+v: host IP is not IPv4", s, got)
			}
		}
		// The canonical form parses back to the same Forward.
		canon := fmt.Sprintf("%d:%d/%s", got.HostPort, got.GuestPort, got.Proto)
		if got.HostIP != "" {
			canon = got.HostIP + ":" + canon
		}
		again, err := ParsePublish(canon)
		if err != nil {
			t.Fatalf("ParsePublish(%q) = %+v, but its canonical form %q fails: %v", s, got, canon, err)
		}
		if again != got {
			t.Fatalf("ParsePublish(%q) = %+v, but its canonical form %q gives %+v", s, got, canon, again)
		}
	})
}

func TestParseEnv(t *testing.T) {
	t.Setenv("NOS_TEST_FROM_HOST", "host value")
	t.Setenv("NOS_TEST_EMPTY", "")
	t.Setenv("NOS_TEST_UNSET", "x") // restored (to unset) after the test
	os.Unsetenv("NOS_TEST_UNSET")

	cases := []struct {
		in      string
		want    string
		wantOK  bool
		wantErr bool
	}{
		{in: "A=1", want: "A=1", wantOK: true},
		{in: "A=", want: "A=", wantOK: true},
		{in: "A==b", want: "A==b", wantOK: true},
		{in: "GREETING=hello world", want: "GREETING=hello world", wantOK: true},
		{in: "URL=http://x/?a=b&c=d", want: "URL=http://x/?a=b&c=d", wantOK: true},
		{in: "NOS_TEST_FROM_HOST=explicit", want: "NOS_TEST_FROM_HOST=explicit", wantOK: true},
		{in: "NOS_TEST_FROM_HOST", want: "NOS_TEST_FROM_HOST=host value", wantOK: true},
		{in: "NOS_TEST_EMPTY", want: "NOS_TEST_EMPTY=", wantOK: true},
		{in: "NOS_TEST_UNSET", want: "", wantOK: false},

		{in: "", wantErr: true},
		{in: "=", wantErr: true},
		{in: "=value", wantErr: true},
		{in: "A B=1", wantErr: true},
		{in: " A=1", wantErr: true},
		{in: "A\t=1", wantErr: true},
		{in: "A\n=1", wantErr: true},
		{in: "A\x00=1", wantErr: true},
		{in: "A=b\x00c", wantErr: true},
		{in: "BARE KEY", wantErr: true},
	}
	for _, tc := range cases {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			kv, ok, err := ParseEnv(tc.in)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("ParseEnv(%q) = %q, %v, want an error", tc.in, kv, ok)
				}
				if !errors.Is(err, ErrBadFlag) {
					t.Errorf("ParseEnv(%q) error %q does not wrap ErrBadFlag", tc.in, err)
				}
				if ok || kv != "" {
					t.Errorf("ParseEnv(%q) = %q, %v with its error, want \"\", false", tc.in, kv, ok)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseEnv(%q): %v", tc.in, err)
			}
			if kv != tc.want || ok != tc.wantOK {
				t.Errorf("ParseEnv(%q) = %q, %v, want %q, %v", tc.in, kv, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func FuzzParseEnv(f *testing.F) {
	for _, s := range []string{"A=1", "A=", "PATH", "HOME", "NOS_FUZZ_UNSET", "=x", "", "A B=1", "A=b\x00c", "é=ü"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kv, ok, err := ParseEnv(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseEnv(%q) error %q does not wrap ErrBadFlag", s, err)
			}
			if ok || kv != "" {
				t.Fatalf("ParseEnv(%q) = %q, %v with error %v", s, kv, ok, err)
			}
			return
		}
		key, _, hasValue := strings.Cut(s, "=")
		if !ok {
			if kv != "" || hasValue {
				t.Fatalf("ParseEnv(%q) = %q, false: only a bare, unset KEY may be dropped", s, kv)
			}
			if _, set := os.LookupEnv(key); set {
				t.Fatalf("ParseEnv(%q) dropped a key the host has", s)
			}
			return
		}
		k, _, found := strings.Cut(kv, "=")
		if !found || k != key || k == "" || strings.ContainsAny(k, " \t\n\x00") || strings.ContainsRune(kv, 0) {
			t.Fatalf("ParseEnv(%q) = %q: not KEY=VALUE with a valid KEY", s, kv)
		}
		if hasValue && kv != s {
			t.Fatalf("ParseEnv(%q) = %q, want the input unchanged", s, kv)
		}
	})
}

// memoryCases are shared by the table test and the fuzzer's seed corpus.
var memoryCases = []struct {
	in      string
	want    int
	wantErr string // substring of the error; "" means success
	bug     string // known bug: the case is skipped, with this reason
}{
	{in: "32", want: 32},
	{in: "256", want: 256},
	{in: "4096", want: 4096},
	{in: "256m", want: 256},
	{in: "256M", want: 256},
	{in: "256mb", want: 256},
	{in: "256MB", want: 256},
	{in: "256MiB", want: 256},
	{in: "256mib", want: 256},
	{in: "1g", want: 1024},
	{in: "1G", want: 1024},
	{in: "1gb", want: 1024},
	{in: "1GiB", want: 1024},
	{in: "1.5g", want: 1536},
	{in: "0.5G", want: 512},
	{in: "32768k", want: 32},
	{in: "24m", want: 24},
	{in: "65536KB", want: 64},
	{in: "131072KiB", want: 128},
	{in: "1t", want: 1 << 20},
	{in: "4T", want: 1 << 22},
	{in: "4tib", want: 1 << 22},
	{in: " 512m ", want: 512},
	{in: "\t2g\n", want: 2048},

	{in: "", wantErr: "not a positive size"},
	{in: " ", wantErr: "not a positive size"},
	{in: "m", wantErr: "not a positive size"},
	{in: "gib", wantErr: "not a positive size"},
	{in: "lots", wantErr: "not a positive size"},
	{in: "abc", wantErr: "not a positive size"},
	{in: "1 g", wantErr: "not a positive size"},
	{in: "1gg", wantErr: "not a positive size"},
	{in: "1,024m", wantErr: "not a positive size"},
	{in: "0x100", wantErr: "not a positive size"},
	{in: "0", wantErr: "not a positive size"},
	{in: "0m", wantErr: "not a positive size"},
	{in: "0.0g", wantErr: "not a positive size"},
	{in: "-1", wantErr: "not a positive size"},
	{in: "-512m", wantErr: "not a positive size"},
	{in: "-1g", wantErr: "not a positive size"},
	{in: "NaN", wantErr: "not a positive size"},
	{in: "nanm", wantErr: "not a positive size"},
	{in: "NaNg", wantErr: "not a positive size"},
	{in: "inf", wantErr: "not a positive size"},
	{in: "Inf", wantErr: "not a positive size"},
	{in: "-infm", wantErr: "not a positive size"},
	{in: "infm", wantErr: "larger than 4 TiB"},
	{in: "+Infg", wantErr: "larger than 4 TiB"},
	{in: "infinitym", wantErr: "larger than 4 TiB"},
	{in: "1e400", wantErr: "not a positive size"},
	{in: "5t", wantErr: "larger than 4 TiB"},
	{in: "4.001t", wantErr: "larger than 4 TiB"},
	{in: "4194305", wantErr: "larger than 4 TiB"},
	{in: "23", wantErr: "below the 24 MiB"},
	{in: "23.9m", wantErr: "below the 24 MiB"},
	{in: "8m", wantErr: "below the 24 MiB"},
	{in: "24575k", wantErr: "below the 24 MiB"},
	{in: "1k", wantErr: "below the 24 MiB"},
	{in: "0.01g", wantErr: "below the 24 MiB"},

	// A trailing character that is not a unit is refused.
	{in: "512x", wantErr: "not a positive size"},
	{in: "100%", wantErr: "not a positive size"},
	{in: "256p", wantErr: "not a positive size"},
}

func TestParseMemory(t *testing.T) {
	for _, tc := range memoryCases {
		t.Run(strconv.Quote(tc.in), func(t *testing.T) {
			if tc.bug != "" {
				t.Skip("known bug: " + tc.bug)
			}
			got, err := ParseMemory(tc.in)
			if tc.wantErr != "" {
				if err == nil {
					t.Fatalf("ParseMemory(%q) = %d, want an error containing %q", tc.in, got, tc.wantErr)
				}
				if !errors.Is(err, ErrBadFlag) {
					t.Errorf("ParseMemory(%q) error %q does not wrap ErrBadFlag", tc.in, err)
				}
				if !strings.Contains(err.Error(), tc.wantErr) {
					t.Errorf("ParseMemory(%q) error %q, want it to contain %q", tc.in, err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseMemory(%q): %v", tc.in, err)
			}
			if got != tc.want {
				t.Errorf("ParseMemory(%q) = %d, want %d", tc.in, got, tc.want)
			}
		})
	}
}

func FuzzParseMemory(f *testing.F) {
	for _, tc := range memoryCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseMemory(s)
		if err != nil {
			if !errors.Is(err, ErrBadFlag) {
				t.Fatalf("ParseMemory(%q) error %q does not wrap ErrBadFlag", s, err)
			}
			if got != 0 {
				t.Fatalf("ParseMemory(%q) = %d with error %v", s, got, err)
			}
			return
		}
		if got < MinMemoryMiB || got > 1<<22 {
			t.Fatalf("ParseMemory(%q) = %d, want %d to %d MiB", s, got, MinMemoryMiB, 1<<22)
		}
		if !strings.ContainsAny(s, "0123456789") {
			t.Fatalf("ParseMemory(%q) = %d from an input without a number", s, got)
		}
	})
}

func TestLaunchSpec(t *testing.T) {
	img := image.Config{
		Entrypoint: []string{"/app/web", "--serve"},
		Args:       []string{"--port", "80"},
		Env:        []string{"PATH=/app:/bin", "GREETING=hi", "TOKEN=image"},
		WorkingDir: "/data",
	}
	defaults := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=web1", "HOME=/root"}
	cases := []struct {
		name     string
		img      image.Config
		opts     Options
		wantArgv []string
		wantEnv  []string
	}{
		{
			name:     "image defaults",
			img:      img,
			wantArgv: []string{"/app/web", "--serve", "--port", "80"},
			wantEnv:  []string{"PATH=/app:/bin", "HOSTNAME=web1", "HOME=/root", "GREETING=hi", "TOKEN=image"},
		},
		{
			name:     "run -e overrides the image's env and adds to it",
			img:      img,
			opts:     Options{Env: []string{"TOKEN=run", "NEW=1", "HOME=/home/app"}},
			wantArgv: []string{"/app/web", "--serve", "--port", "80"},
			wantEnv:  []string{"PATH=/app:/bin", "HOSTNAME=web1", "HOME=/home/app", "GREETING=hi", "TOKEN=run", "NEW=1"},
		},
		{
			name:     "run args replace the image's args",
			img:      img,
			opts:     Options{Args: []string{"--port", "8080", "-v"}},
			wantArgv: []string{"/app/web", "--serve", "--port", "8080", "-v"},
			wantEnv:  []string{"PATH=/app:/bin", "HOSTNAME=web1", "HOME=/root", "GREETING=hi", "TOKEN=image"},
		},
		{
			name:     "entrypoint drops the image's args",
			img:      img,
			opts:     Options{Entrypoint: []string{"/bin/sh"}},
			wantArgv: []string{"/bin/sh"},
			wantEnv:  []string{"PATH=/app:/bin", "HOSTNAME=web1", "HOME=/root", "GREETING=hi", "TOKEN=image"},
		},
		{
			name:     "entrypoint with run args",
			img:      img,
			opts:     Options{Entrypoint: []string{"/bin/sh"}, Args: []string{"-c", "echo hi"}},
			wantArgv: []string{"/bin/sh", "-c", "echo hi"},
			wantEnv:  []string{"PATH=/app:/bin", "HOSTNAME=web1", "HOME=/root", "GREETING=hi", "TOKEN=image"},
		},
		{
			name:     "image without env gets the defaults",
			img:      image.Config{Entrypoint: []string{"/app/hello"}},
			wantArgv: []string{"/app/hello"},
			wantEnv:  defaults,
		},
		{
			name:     "run -e overrides a default",
			img:      image.Config{Entrypoint: []string{"/app/hello"}},
			opts:     Options{Env: []string{"PATH=/x"}},
			wantArgv: []string{"/app/hello"},
			wantEnv:  append([]string{"PATH=/x"}, defaults[1:]...),
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := launchSpec(tc.img, tc.opts, "web1")
			want := launch{Argv: tc.wantArgv, Env: tc.wantEnv}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("launchSpec mismatch (-want +got):\n%s", diff)
			}
			// The result must not share storage with the image config.
			if len(got.Argv) > 0 {
				got.Argv[0] = "changed"
				if len(tc.img.Entrypoint) > 0 && tc.img.Entrypoint[0] == "changed" {
					t.Error("launchSpec's Argv aliases the image's Entrypoint")
				}
			}
		})
	}
}

// TestGuestConfig checks what the monitor tells the init: the launch spec
// as created, the network from the machine's NIC, the root disk, fresh
// entropy and the time.
func TestGuestConfig(t *testing.T) {
	cfg := Config{ID: strings.Repeat("ab", 32), Entrypoint: []string{"/app/web"}, Env: []string{"A=1"}, WorkingDir: "/d", RootFS: "erofs",
		User: &guestapi.User{UID: 33, GID: 33}, Caps: []string{"CAP_NET_BIND_SERVICE"}}
	m := &monitor{cfg: cfg, dir: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	before := time.Now()
	got := m.guestConfig(m.machine(nil))
	want := &guestapi.Config{
		Argv: []string{"/app/web"}, Env: []string{"A=1"}, WorkingDir: "/d", Hostname: "abababababab",
		Network: &guestapi.Network{Interface: "eth0", Address: "10.0.2.15/24", Gateway: "10.0.2.2", DNS: []string{"10.0.2.3"}},
		Root:    &guestapi.Root{Device: "/dev/vda", FSType: "erofs", Serial: "nos-root"},
		User:    cfg.User, Caps: cfg.Caps,
	}
	if diff := cmp.Diff(want, got, cmpopts.IgnoreFields(guestapi.Config{}, "Seed", "Time")); diff != "" {
		t.Errorf("guestConfig mismatch (-want +got):\n%s", diff)
	}
	if len(got.Seed) != 64 || strings.Count(string(got.Seed), "\x00") == 64 {
		t.Errorf("guestConfig Seed = %x, want 64 random bytes", got.Seed)
	}
	if got.Time.Before(before.Add(-time.Second)) || got.Time.After(time.Now().Add(time.Second)) {
		t.Errorf("guestConfig Time = %v, want about now", got.Time)
	}
	m.cfg.NoNetwork, m.cfg.Name = true, "web"
	if g := m.guestConfig(m.machine(nil)); g.Network != nil || g.Hostname != "web" {
		t.Errorf("no network: %+v, hostname %q", g.Network, g.Hostname)
	}
	m.cfg.WritableRoot, m.cfg.RootTmpfsSize = true, 8<<20
	m.cfg.Tmpfs = []guestapi.Tmpfs{{Path: "/scratch", Size: 1 << 20, Mode: 0o700}}
	g := m.guestConfig(m.machine(nil))
	if diff := cmp.Diff(&guestapi.Root{Device: "/dev/vda", FSType: "erofs", Serial: "nos-root", Writable: true, TmpfsSize: 8 << 20}, g.Root); diff != "" {
		t.Errorf("writable root (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(m.cfg.Tmpfs, g.Tmpfs); diff != "" {
		t.Errorf("tmpfs (-want +got):\n%s", diff)
	}
}

func TestGuestConfigSeedsDiffer(t *testing.T) {
	m := &monitor{cfg: Config{ID: strings.Repeat("0", 64)}, log: slog.New(slog.DiscardHandler)}
	a, b := m.guestConfig(m.machine(nil)), m.guestConfig(m.machine(nil))
	if string(a.Seed) == string(b.Seed) {
		t.Errorf("two configs got the same seed %x", a.Seed)
	}
}

func TestCmdline(t *testing.T) {
	const base = "console=ttyS0 panic=-1"
	if got := cmdline(base, vmm.AccelKVM); got != base {
		t.Errorf("cmdline(%q, kvm) = %q, want it unchanged", base, got)
	}
	got := cmdline(base, vmm.AccelTCG)
	m := regexp.MustCompile(`^` + regexp.QuoteMeta(base) + ` tsc_early_khz=([1-9][0-9]*)$`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("cmdline(%q, tcg) = %q, want %q followed by \" tsc_early_khz=<kHz>\"", base, got, base)
	}
	if want := strconv.Itoa(hostTSCkHz()); m[1] != want {
		t.Errorf("cmdline(%q, tcg) gives tsc_early_khz=%s, want the host's %s", base, m[1], want)
	}
	if khz, _ := strconv.Atoi(m[1]); khz < 100_000 || khz > math.MaxInt32 {
		t.Errorf("tsc_early_khz=%d is not a plausible TSC rate", khz)
	}
}

func TestCheckHostPort(t *testing.T) {
	t.Run("tcp in use", func(t *testing.T) {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		port := l.Addr().(*net.TCPAddr).Port
		for _, ip := range []string{"127.0.0.1", ""} {
			err := checkHostPort(vmm.Forward{Proto: "tcp", HostIP: ip, HostPort: port, GuestPort: 80})
			if !errors.Is(err, ErrPortInUse) {
				t.Errorf("checkHostPort(%s:%d/tcp) with the port held = %v, want ErrPortInUse", ip, port, err)
			} else if !strings.Contains(err.Error(), strconv.Itoa(port)) {
				t.Errorf("checkHostPort error %q does not name the port %d", err, port)
			}
		}
	})
	t.Run("udp in use", func(t *testing.T) {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		port := c.LocalAddr().(*net.UDPAddr).Port
		err = checkHostPort(vmm.Forward{Proto: "udp", HostIP: "127.0.0.1", HostPort: port, GuestPort: 53})
		if !errors.Is(err, ErrPortInUse) {
			t.Errorf("checkHostPort(127.0.0.1:%d/udp) with the port held = %v, want ErrPortInUse", port, err)
		}
	})
	t.Run("free", func(t *testing.T) {
		for _, proto := range []string{"tcp", "udp"} {
			port := freePort(t, proto)
			f := vmm.Forward{Proto: proto, HostIP: "127.0.0.1", HostPort: port, GuestPort: 80}
			if err := checkHostPort(f); err != nil {
				t.Errorf("checkHostPort(%+v) on a free port: %v", f, err)
			}
			// The check must not keep the port.
			if err := checkHostPort(f); err != nil {
				t.Errorf("second checkHostPort(%+v): %v (the first kept the port?)", f, err)
			}
		}
	})
}

// freePort returns a port that was free a moment ago.
func freePort(t *testing.T, proto string) int {
	t.Helper()
	if proto == "udp" {
		c, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		return c.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func TestParseUser(t *testing.T) {
	for in, want := range map[string][2]uint32{"0": {0, 0}, "1000": {1000, 0}, "33:33": {33, 33}, "65534:100": {65534, 100}} {
		u, err := ParseUser(in)
		if err != nil || u.UID != want[0] || u.GID != want[1] {
			t.Errorf("ParseUser(%q) = %+v, %v", in, u, err)
		}
	}
	for _, bad := range []string{"", "bob", "1:", ":1", "1:x", "-1", "4294967296"} {
		if _, err := ParseUser(bad); err == nil || !errors.Is(err, ErrBadFlag) {
			t.Errorf("ParseUser(%q): err = %v, want ErrBadFlag", bad, err)
		}
	}
}

func TestParseAddHost(t *testing.T) {
	for in, want := range map[string]HostEntry{
		"db:192.0.2.7":                   {Name: "db", IP: "192.0.2.7"},
		"db=192.0.2.7":                   {Name: "db", IP: "192.0.2.7"},
		"host.nos.internal:host-gateway": {Name: "host.nos.internal", IP: HostGateway},
		"v6:2001:db8::1":                 {Name: "v6", IP: "2001:db8::1"},
		"v6:[2001:db8::1]":               {Name: "v6", IP: "2001:db8::1"},
	} {
		got, err := ParseAddHost(in)
		if err != nil || got != want {
			t.Errorf("ParseAddHost(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "db", "db:", ":192.0.2.1", "d b:192.0.2.1", "-db:192.0.2.1", "db:999.0.0.1", "db:fe80::1%eth0", "db:gateway", "a\nb:192.0.2.1"} {
		if _, err := ParseAddHost(in); !errors.Is(err, ErrBadFlag) || !strings.HasPrefix(err.Error(), "--add-host ") {
			t.Errorf("ParseAddHost(%q): %v; want a --add-host ErrBadFlag", in, err)
		}
	}
	if p, err := ParseHostPorts("5432, 8080"); err != nil || len(p) != 2 || p[0] != 5432 || p[1] != 8080 {
		t.Errorf("ParseHostPorts = %v, %v", p, err)
	}
	for _, in := range []string{"", "0", "70000", "80,", "http"} {
		if _, err := ParseHostPorts(in); !errors.Is(err, ErrBadFlag) {
			t.Errorf("ParseHostPorts(%q): %v", in, err)
		}
	}
}

func TestCheckHosts(t *testing.T) {
	gw := []HostEntry{{Name: "host", IP: HostGateway}}
	cur := image.Config{InitAPI: image.InitAPI}
	for _, c := range []struct {
		o    Options
		icfg image.Config
		want string // "" for accepted
	}{
		{Options{AddHosts: []HostEntry{{Name: "db", IP: "192.0.2.1"}}}, cur, ""},
		{Options{AddHosts: gw, HostPorts: []uint16{80}}, cur, ""},
		{Options{AddHosts: gw}, image.Config{InitAPI: image.InitAPIInteractive}, "older nos"},
		{Options{HostPorts: []uint16{80}}, cur, "add --add-host NAME:host-gateway"},
		{Options{AddHosts: gw, NoNIC: true}, cur, "no network"},
		{Options{AddHosts: gw, Networks: []NetworkRequest{{Name: "n"}}}, cur, "private networks"},
	} {
		err := checkHosts(c.o, c.icfg)
		if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want) || !errors.Is(err, ErrBadFlag)) {
			t.Errorf("checkHosts(%+v): %v; want %q", c.o, err, c.want)
		}
	}
}

func TestGuestHosts(t *testing.T) {
	m := &monitor{cfg: Config{ID: strings.Repeat("ab", 32), Hosts: []HostEntry{{Name: "db", IP: "192.0.2.1"}, {Name: "host", IP: HostGateway}}}, dir: t.TempDir(), log: slog.New(slog.DiscardHandler)}
	want := []guestapi.Host{{Name: "db", IP: "192.0.2.1"}, {Name: "host", IP: "10.0.2.2"}}
	if diff := cmp.Diff(want, m.guestConfig(m.machine(nil)).Hosts); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}
