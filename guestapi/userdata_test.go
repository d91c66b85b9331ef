package guestapi

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

func TestParseUserData(t *testing.T) {
	u, err := ParseUserData([]byte("#nos-config\n{\"env\":[\"A=1\",\"B=x=y\"],\"args\":[\"--v\"],\"hostname\":\"web-1\"}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg := &Config{Argv: []string{"/app", "--port", "80"}, EntrypointLen: 1, Env: []string{"A=0", "PATH=/bin"}, Hostname: "img"}
	u.Apply(cfg)
	if !slices.Equal(cfg.Argv, []string{"/app", "--v"}) || !slices.Equal(cfg.Env, []string{"PATH=/bin", "A=1", "B=x=y"}) || cfg.Hostname != "web-1" {
		t.Errorf("applied: %+v", cfg)
	}
	// Empty args replace the arguments; no args keeps them.
	for _, c := range []struct {
		in   string
		want []string
	}{
		{`{"args":[]}`, []string{"/app"}},
		{`{"env":["X=1"]}`, []string{"/app", "--port"}},
		{"", []string{"/app", "--port"}},
		{"#nos-config\n", []string{"/app", "--port"}},
	} {
		u, err := ParseUserData([]byte(c.in))
		if err != nil {
			t.Fatalf("%q: %v", c.in, err)
		}
		cfg := &Config{Argv: []string{"/app", "--port"}, EntrypointLen: 1}
		u.Apply(cfg)
		if !slices.Equal(cfg.Argv, c.want) {
			t.Errorf("%q: argv %q, want %q", c.in, cfg.Argv, c.want)
		}
	}
}

func TestParseUserDataRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"#cloud-config\nusers: []\n":           "not nos's",
		"#!/bin/sh\necho hi\n":                 "not nos's",
		`{"evn":["A=1"]}`:                      "unknown field",
		`{"env":["=1"]}`:                       "want KEY=VALUE",
		`{"env":["NOEQUALS"]}`:                 "want KEY=VALUE",
		`{"hostname":"-bad"}`:                  "hostname",
		`{"env":[]} {"env":[]}`:                "more than one",
		`{"args":"not-a-list"}`:                "cannot unmarshal",
		"{" + strings.Repeat(" ", 70000) + "}": "more than",
	} {
		_, err := ParseUserData([]byte(in))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.40q: err %v, want %q", in, err, want)
		}
	}
	if _, err := ParseUserData([]byte("#cloud-config\n")); !errors.Is(err, ErrNotNosUserData) {
		t.Errorf("cloud-config: %v", err)
	}
}

// FuzzParseUserData: user-data comes from outside (a platform's metadata
// service, a disk anyone can hand the VM); parsing never panics and what
// it accepts applies to any config.
func FuzzParseUserData(f *testing.F) {
	f.Add([]byte("#nos-config\n{\"env\":[\"A=1\"],\"args\":[\"x\"],\"hostname\":\"h\"}"))
	f.Add([]byte(`{"args":[]}`))
	f.Add([]byte("#cloud-config\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		u, err := ParseUserData(b)
		if err != nil {
			return
		}
		cfg := &Config{Argv: []string{"/a", "b"}, EntrypointLen: 5}
		u.Apply(cfg)
		if len(cfg.Argv) == 0 || cfg.Argv[0] != "/a" {
			t.Fatalf("entrypoint lost: %q", cfg.Argv)
		}
	})
}
