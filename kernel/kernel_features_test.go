package kernel

import (
	"os"
	"testing"
)

func TestHasNetwork(t *testing.T) {
	for _, c := range []struct {
		features []string
		want     bool
	}{
		{nil, true}, // unknown: a distribution kernel has everything
		{[]string{}, false},
		{[]string{"blk"}, false},
		{[]string{"blk", "net"}, true},
	} {
		if got := (&Kernel{Features: c.features}).HasNetwork(); got != c.want {
			t.Errorf("HasNetwork(%v) = %v, want %v", c.features, got, c.want)
		}
	}
}

func TestUnpacksLZ4(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := dir + "/" + name
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, c := range []struct {
		config string // "" for no configuration file
		want   bool
	}{
		{"", false}, // unknown: gzip, which every kernel unpacks
		{"CONFIG_RD_LZ4=y\nCONFIG_RD_GZIP=y\n", true},
		{"CONFIG_RD_GZIP=y\nCONFIG_RD_LZ4=y\n", true},
		{"CONFIG_RD_GZIP=y\n# CONFIG_RD_LZ4 is not set\n", false},
		{"CONFIG_RD_LZ4=m\n", false},
	} {
		k := &Kernel{}
		if c.config != "" {
			k.ConfigPath = write("config", c.config)
		}
		if got := k.UnpacksLZ4(); got != c.want {
			t.Errorf("config %q: UnpacksLZ4 = %v, want %v", c.config, got, c.want)
		}
	}
	if (&Kernel{ConfigPath: dir + "/missing"}).UnpacksLZ4() {
		t.Error("an unreadable configuration: UnpacksLZ4 = true, want false")
	}
}
