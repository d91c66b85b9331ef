package guestapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// UserData is what a platform's user-data may hold for a nos guest that
// runs without a nos host (an exported disk): changes to the image's
// configuration, applied by nos-init before the application starts. The
// same text works everywhere a platform takes user-data: a NoCloud
// cidata disk's user-data file (KubeVirt, libvirt, many hypervisors),
// AWS's and Azure's user data, and GCE's user-data metadata attribute.
//
// The format is one JSON object, optionally preceded by a first line
// "#nos-config":
//
//		#nos-config
//		{"env": ["GREETING=hello", "PORT=8080"], "args": ["--verbose"], "hostname": "web-1"}
//
//	  - env: KEY=VALUE entries; each replaces the image's variable of that
//	    name, or is added.
//	  - args: when present (even empty), replaces the image's arguments; the
//	    entrypoint stays.
//	  - hostname: the guest's hostname (else the platform's, else the
//	    image's name).
//
// Other fields are an error, so that a typo is not silently ignored.
// User-data in another format (cloud-init's "#cloud-config", a script)
// is not nos's: ParseUserData reports ErrNotNosUserData and the guest
// runs the image as built.
type UserData struct {
	Env      []string  `json:"env,omitempty"`
	Args     *[]string `json:"args,omitempty"`
	Hostname string    `json:"hostname,omitempty"`
}

// UserDataHeader is the optional first line of nos user-data.
const UserDataHeader = "#nos-config"

// MaxUserData bounds the user-data nos-init reads: more than AWS (16 KiB)
// and Azure (64 KiB) accept.
const MaxUserData = 64 << 10

// ErrNotNosUserData: the user-data is for something else.
var ErrNotNosUserData = errors.New("user-data is not nos's (want a JSON object, optionally after a #nos-config line)")

// ParseUserData decodes nos user-data. Empty (or blank) user-data is no
// change: it returns a zero UserData.
func ParseUserData(b []byte) (*UserData, error) {
	if len(b) > MaxUserData {
		return nil, fmt.Errorf("user-data of %d bytes: more than %d", len(b), MaxUserData)
	}
	t := bytes.TrimSpace(b)
	if rest, ok := bytes.CutPrefix(t, []byte(UserDataHeader)); ok && (len(rest) == 0 || rest[0] == '\n' || rest[0] == '\r') {
		t = bytes.TrimSpace(rest)
	}
	if len(t) == 0 {
		return &UserData{}, nil
	}
	if t[0] != '{' {
		return nil, ErrNotNosUserData
	}
	dec := json.NewDecoder(bytes.NewReader(t))
	dec.DisallowUnknownFields()
	var u UserData
	if err := dec.Decode(&u); err != nil {
		return nil, fmt.Errorf("user-data: %w", err)
	}
	if dec.More() {
		return nil, errors.New("user-data: more than one JSON value")
	}
	for _, e := range u.Env {
		if k, _, ok := strings.Cut(e, "="); !ok || k == "" || strings.ContainsRune(k, 0) {
			return nil, fmt.Errorf("user-data: env entry %q: want KEY=VALUE", e)
		}
	}
	if u.Hostname != "" && !validHostname(u.Hostname) {
		return nil, fmt.Errorf("user-data: hostname %q: want letters, digits, '-' and '.', at most 253", u.Hostname)
	}
	return &u, nil
}

// Apply changes cfg as u says; cfg.EntrypointLen tells the entrypoint
// from the arguments.
func (u *UserData) Apply(cfg *Config) {
	for _, e := range u.Env {
		cfg.Env = SetEnv(cfg.Env, e)
	}
	if u.Args != nil {
		n := min(cfg.EntrypointLen, len(cfg.Argv))
		cfg.Argv = append(cfg.Argv[:n:n], *u.Args...)
	}
	if u.Hostname != "" {
		cfg.Hostname = u.Hostname
	}
}

// SetEnv returns env with kv (KEY=VALUE) replacing the entry of that key,
// or appended.
func SetEnv(env []string, kv string) []string {
	k, _, _ := strings.Cut(kv, "=")
	out := env[:0:0]
	for _, e := range env {
		if ek, _, _ := strings.Cut(e, "="); ek != k {
			out = append(out, e)
		}
	}
	return append(out, kv)
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(h, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
				return false
			}
		}
	}
	return true
}
