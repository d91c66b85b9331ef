package kbuild

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nosproject/nos/kernel/config"
)

func TestApplyEdits(t *testing.T) {
	tree := t.TempDir()
	e := edit{name: "test", file: "drivers/x.c", old: "while (ret > 0);\n", new: "while (ret > 0 && n < 64);\n"}
	p := filepath.Join(tree, e.file)
	os.MkdirAll(filepath.Dir(p), 0o755)
	os.WriteFile(p, []byte("do {\n} while (ret > 0);\nreturn n;\n"), 0o644)
	if err := applyEdits(tree, []edit{e}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); string(b) != "do {\n} while (ret > 0 && n < 64);\nreturn n;\n" {
		t.Errorf("edited: %q", b)
	}
	// Applied twice, the text is gone: refused, the file unchanged.
	if err := applyEdits(tree, []edit{e}); err == nil || !strings.Contains(err.Error(), "occurs 0 times") {
		t.Errorf("a source the edit does not fit: want a refusal, got %v", err)
	}
	if err := applyEdits(tree, []edit{{name: "missing", file: "nope.c", old: "a", new: "b"}}); err == nil {
		t.Error("a missing file: want an error")
	}
}

func TestBuildKeyEdits(t *testing.T) {
	frags, err := config.Fragments(config.Features())
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Merge(frags)
	if err != nil {
		t.Fatal(err)
	}
	plain := buildKey("sha256:x", cfg, "gcc", nil)
	edited := buildKey("sha256:x", cfg, "gcc", edits)
	if plain == edited {
		t.Error("the edits do not change the build key")
	}
	if buildKey("sha256:x", cfg, "gcc", edits) != edited {
		t.Error("the build key is not stable")
	}
}
