package cli

import (
	"bytes"
	"testing"
)

func TestParseDetachKeys(t *testing.T) {
	for in, want := range map[string][]byte{
		"ctrl-p,ctrl-q": {0x10, 0x11},
		"Ctrl-A,x":      {0x01, 'x'},
		"ctrl-@":        {0},
		"":              nil,
	} {
		got, err := parseDetachKeys(in)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("parseDetachKeys(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"ctrl-", "ctrl-pp", "ab", "ctrl-1", ","} {
		if _, err := parseDetachKeys(bad); err == nil {
			t.Errorf("parseDetachKeys(%q): want an error", bad)
		}
	}
}

func TestDetachScanner(t *testing.T) {
	keys := []byte{0x10, 0x11}
	for _, c := range []struct {
		name   string
		chunks []string
		out    string
		detach bool
	}{
		{"plain", []string{"abc"}, "abc", false},
		{"sequence", []string{"ab\x10\x11cd"}, "ab", true},
		{"split across reads", []string{"ab\x10", "\x11"}, "ab", true},
		{"ctrl-p alone passes on", []string{"a\x10b"}, "a\x10b", false},
		{"ctrl-p ctrl-p ctrl-q", []string{"\x10\x10\x11"}, "\x10", true},
		{"held ctrl-p then other", []string{"\x10", "z"}, "\x10z", false},
	} {
		d := detachScanner{keys: keys}
		var out []byte
		detach := false
		for _, ch := range c.chunks {
			o, dt := d.scan([]byte(ch))
			out = append(out, o...)
			if dt {
				detach = true
				break
			}
		}
		if string(out) != c.out || detach != c.detach {
			t.Errorf("%s: got %q detach=%v, want %q detach=%v", c.name, out, detach, c.out, c.detach)
		}
	}
	d := detachScanner{}
	if o, dt := d.scan([]byte("\x10\x11")); string(o) != "\x10\x11" || dt {
		t.Errorf("no keys: got %q %v", o, dt)
	}
}

func TestExecOptions(t *testing.T) {
	ex, keys, err := execOptions(true, true, []string{"A=1"}, "1000:100", "/srv", defaultDetachKeys, []string{"ls", "-l"})
	if err != nil {
		t.Fatal(err)
	}
	if !ex.Stdin || !ex.TTY || ex.WorkingDir != "/srv" || ex.User == nil || ex.User.UID != 1000 || ex.User.GID != 100 ||
		len(ex.Env) != 1 || ex.Env[0] != "A=1" || len(ex.Argv) != 2 || len(keys) != 2 {
		t.Fatalf("execOptions: %+v %v", ex, keys)
	}
	for _, bad := range [][]string{{"-w", "relative"}, {"-u", "nobody:x:y"}, {"--detach-keys", "ctrl-"}} {
		user, dir, dk := "", "", ""
		switch bad[0] {
		case "-w":
			dir = bad[1]
		case "-u":
			user = bad[1]
		default:
			dk = bad[1]
		}
		if _, _, err := execOptions(false, false, nil, user, dir, dk, []string{"ls"}); err == nil {
			t.Errorf("execOptions %v: want an error", bad)
		}
	}
}

func TestRunInteractiveFlags(t *testing.T) {
	cmd := newRunCmd(&env{})
	if err := cmd.Flags().Parse([]string{"-it", "--time", "5", "--detach-keys", "ctrl-a", "img", "-t"}); err != nil {
		t.Fatal(err)
	}
	fl := cmd.Flags()
	i, _ := fl.GetBool("interactive")
	tty, _ := fl.GetBool("tty")
	secs, _ := fl.GetInt("time")
	if !i || !tty || secs != 5 || fl.Arg(1) != "-t" {
		t.Fatalf("run -it --time 5: interactive=%v tty=%v time=%d args=%v", i, tty, secs, fl.Args())
	}
}
