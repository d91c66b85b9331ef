package instance

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/nosproject/nos/vmm"
)

func TestUserProxy(t *testing.T) {
	withPasst := t.TempDir()
	if err := os.WriteFile(filepath.Join(withPasst, "passt"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	without := t.TempDir()
	host := []HostEntry{{Name: "h", IP: HostGateway}}
	for _, c := range []struct {
		name, path, env string
		cfg             Config
		want            vmm.Proxy
		bad             bool
	}{
		{"root: slirp and the guard", withPasst, "", Config{JailUID: JailUIDBase}, vmm.ProxySlirp, false},
		{"root, host ports", withPasst, "", Config{JailUID: JailUIDBase, Hosts: host, HostPorts: []uint16{80}}, vmm.ProxySlirp, false},
		{"no root: passt", withPasst, "", Config{}, vmm.ProxyPasst, false},
		{"no root, the host named", withPasst, "", Config{Hosts: host}, vmm.ProxyPasst, false},
		{"no root, no passt", without, "", Config{}, vmm.ProxySlirp, false},
		{"no root, host ports", withPasst, "", Config{Hosts: host, HostPorts: []uint16{80}}, "", true},
		{"asked for slirp", withPasst, "slirp", Config{}, vmm.ProxySlirp, false},
		{"asked for passt as root", withPasst, "passt", Config{JailUID: JailUIDBase}, vmm.ProxyPasst, false},
		{"asked for passt, none", without, "passt", Config{}, "", true},
		{"asked for something else", withPasst, "vde", Config{}, "", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PATH", c.path)
			t.Setenv(UserProxyEnv, c.env)
			got, err := userProxy(c.cfg)
			if c.bad {
				if err == nil {
					t.Fatalf("want an error, got %q", got)
				}
				return
			}
			if err != nil || got != c.want {
				t.Errorf("got %q, %v; want %q", got, err, c.want)
			}
		})
	}
	t.Setenv("PATH", withPasst)
	if _, err := userProxy(Config{Hosts: host, HostPorts: []uint16{80}}); !errors.Is(err, ErrBadFlag) {
		t.Errorf("--host-port without root: want ErrBadFlag, got %v", err)
	}
}
