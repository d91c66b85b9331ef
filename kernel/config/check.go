package config

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Problem is an option a fragment set that the resolved configuration
// does not have with that value.
type Problem struct {
	Option
	// Got is the value in the resolved configuration; "" when it does not
	// mention the option at all.
	Got string
	// Unknown is set when the kernel source defines no such option.
	Unknown bool
}

func (p Problem) String() string {
	switch {
	case p.Unknown:
		return p.Option.String() + " (unknown to this kernel)"
	case p.Got == "" || p.Got == Off:
		return p.Option.String() + " (dropped: not set, its dependencies are unmet)"
	}
	return fmt.Sprintf("%s (now %s)", p.Option, p.Got)
}

// CheckError lists the options that did not survive.
type CheckError struct {
	Problems []Problem
}

func (e *CheckError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d option(s) the fragments set are not in the kernel's configuration: ", len(e.Problems))
	for i, p := range e.Problems {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(p.String())
	}
	return b.String()
}

// Check verifies that every option of want has its value in got, the
// configuration Kconfig resolved. An option want turns off (Off) may be
// absent from got. known, when not nil, holds the symbols the kernel
// defines (without CONFIG_, see [KnownSymbols]); options outside it are
// reported as unknown. Check returns a *CheckError naming every problem,
// in want's order, or nil.
func Check(want, got *Config, known map[string]bool) error {
	var problems []Problem
	for _, o := range want.Options() {
		if known != nil && !known[strings.TrimPrefix(o.Name, "CONFIG_")] {
			problems = append(problems, Problem{Option: o, Unknown: true})
			continue
		}
		v, ok := got.Get(o.Name)
		switch {
		case o.Value == Off && (!ok || v == Off):
		case ok && v == o.Value:
		default:
			problems = append(problems, Problem{Option: o, Got: v})
		}
	}
	if len(problems) > 0 {
		return &CheckError{Problems: problems}
	}
	return nil
}

// KnownSymbols returns the names of the options (without CONFIG_) that the
// Kconfig files of the kernel source tree at srcDir define with `config`
// or `menuconfig`.
func KnownSymbols(srcDir string) (map[string]bool, error) {
	known := make(map[string]bool)
	err := filepath.WalkDir(srcDir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if name := d.Name(); path != srcDir && (strings.HasPrefix(name, ".") || name == "Documentation") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Kconfig") || !d.Type().IsRegular() {
			return nil
		}
		return addSymbols(known, path)
	})
	if err != nil {
		return nil, fmt.Errorf("reading Kconfig files: %w", err)
	}
	if len(known) == 0 {
		return nil, fmt.Errorf("no Kconfig symbols found in %s", srcDir)
	}
	return known, nil
}

func addSymbols(known map[string]bool, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) == 2 && (fields[0] == "config" || fields[0] == "menuconfig") {
			known[fields[1]] = true
		}
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
