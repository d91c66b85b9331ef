// Command treeprobe is the program of TestRootfsDir: it reports who it runs
// as, where, and what it finds in the root tree it was built from, one
// line per fact, so that the test can compare them.
package main

import (
	"errors"
	"fmt"
	"os"
	"syscall"
)

func main() {
	groups, _ := os.Getgroups()
	fmt.Printf("uid=%d gid=%d groups=%v\n", os.Getuid(), os.Getgid(), groups)
	wd, err := os.Getwd()
	fmt.Printf("cwd=%s %v\n", wd, errText(err))
	for _, p := range os.Args[1:] {
		fi, err := os.Lstat(p)
		if err != nil {
			fmt.Printf("%s: %v\n", p, errText(err))
			continue
		}
		st := fi.Sys().(*syscall.Stat_t)
		b, err := os.ReadFile(p)
		content := fmt.Sprintf("%q", b)
		if err != nil {
			content = errText(err)
		}
		fmt.Printf("%s: %v %d:%d %s\n", p, fi.Mode(), st.Uid, st.Gid, content)
	}
	// The tree is the root disk (writable for root, read-only with
	// --read-only); /tmp is the guest's own.
	for _, p := range []string{wd + "/new", "/tmp/new"} {
		fmt.Printf("write %s: %s\n", p, errText(os.WriteFile(p, []byte("x"), 0o644)))
	}
}

// errText is an error's errno text alone (without the path), or "ok".
func errText(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.As(err, &errno):
		return errno.Error()
	}
	return err.Error()
}
