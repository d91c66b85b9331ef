// Command ocihello is the container of nos-runtime's integration tests:
// a static program in an OCI bundle's rootfs, which nos-runtime runs as
// a microVM.
//
//	ocihello info          print what the container sees, one KEY=VALUE a line
//	ocihello exit N        exit with code N
//	ocihello wait          print "waiting", then wait for SIGTERM; print "got SIGTERM" and exit 0
//	ocihello cat           copy stdin to stdout, then print "EOF after N bytes"
//	ocihello tty           print the terminal's size ("tty rows=R cols=C"), read a line and print it ("got LINE"),
//	                       then print the size at each SIGWINCH ("winch rows=R cols=C") until it changes
//	ocihello files         print the files engines bind-mount: /etc/hostname, /etc/hosts, /etc/resolv.conf, /run/.containerenv
//	ocihello mounts        print RLIMIT_NPROC ("nproc=SOFT:HARD"), /scratch's file system ("scratch tmpfs=BOOL size=BYTES"),
//	                       /data/from-host's content ("data=..."), and write /data/from-guest
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("hello from a nos microVM")
		return
	}
	switch os.Args[1] {
	case "info":
		host, _ := os.Hostname()
		cwd, _ := os.Getwd()
		fmt.Printf("hostname=%s\nuid=%d\ngid=%d\ncwd=%s\nFOO=%s\nargs=%q\n", host, os.Getuid(), os.Getgid(), cwd, os.Getenv("FOO"), os.Args[2:])
		b, err := os.ReadFile("/etc/marker")
		fmt.Printf("marker=%s err=%v\n", b, err)
		for _, e := range os.Environ() {
			fmt.Println("env " + e)
		}
		// The root is the bundle's rootfs, shared read-write: the host sees this.
		fmt.Printf("write=%v\n", os.WriteFile("/written-by-guest", []byte("hi"), 0o644))
		fmt.Fprintln(os.Stderr, "to stderr")
	case "exit":
		n, _ := strconv.Atoi(os.Args[2])
		os.Exit(n)
	case "wait":
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("waiting")
		<-c
		fmt.Println("got SIGTERM")
	case "cat":
		n, err := io.Copy(os.Stdout, os.Stdin)
		fmt.Printf("\nEOF after %d bytes err=%v\n", n, err)
	case "tty":
		winch := make(chan os.Signal, 1)
		signal.Notify(winch, syscall.SIGWINCH)
		ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
		if err != nil {
			fmt.Println("no terminal:", err)
			os.Exit(1)
		}
		fmt.Printf("tty rows=%d cols=%d\n", ws.Row, ws.Col)
		line, err := bufio.NewReader(os.Stdin).ReadString('\n')
		fmt.Printf("got %q err=%v\n", line, err)
		// Until the size changes: an engine that sets the size it started
		// with once more, after the app started, raises a SIGWINCH too.
		first, deadline := *ws, time.After(2*time.Minute)
		for *ws == first {
			select {
			case <-winch:
				ws, _ = unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
				fmt.Printf("winch rows=%d cols=%d\n", ws.Row, ws.Col)
			case <-deadline:
				fmt.Println("no SIGWINCH")
				os.Exit(3)
			}
		}
	case "mounts":
		// NPROC: Go's runtime raises a program's soft NOFILE itself.
		var l unix.Rlimit
		_ = unix.Getrlimit(unix.RLIMIT_NPROC, &l)
		fmt.Printf("nproc=%d:%d\n", l.Cur, l.Max)
		var st unix.Statfs_t
		err := unix.Statfs("/scratch", &st)
		fmt.Printf("scratch tmpfs=%v size=%d err=%v\n", st.Type == unix.TMPFS_MAGIC, int64(st.Blocks)*st.Bsize, err)
		b, err := os.ReadFile("/data/from-host")
		fmt.Printf("data=%s err=%v\n", b, err)
		fmt.Printf("write=%v\n", os.WriteFile("/data/from-guest", []byte("written in the VM"), 0o644))
	case "files":
		for _, p := range []string{"/etc/hostname", "/etc/hosts", "/etc/resolv.conf", "/run/.containerenv"} {
			b, err := os.ReadFile(p)
			fmt.Printf("== %s err=%v\n%s", p, err, b)
		}
	default:
		fmt.Fprintln(os.Stderr, "unknown mode", os.Args[1])
		os.Exit(2)
	}
}
