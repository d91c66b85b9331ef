// Command probe is a test application for nos's integration tests. Its
// first argument picks what it reports about the guest it runs in.
package main

import (
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: probe MODE [ARGS]")
		os.Exit(2)
	}
	switch mode, args := os.Args[1], os.Args[2:]; mode {
	case "env": // print the named variables
		for _, k := range args {
			fmt.Printf("%s=%s\n", k, os.Getenv(k))
		}
	case "cmdline": // the kernel command line, where secrets must not be
		b, err := os.ReadFile("/proc/cmdline")
		check(err)
		fmt.Printf("cmdline: %s", b)
	case "system": // what the init set up
		host, _ := os.Hostname()
		fmt.Println("hostname:", host)
		wd, _ := os.Getwd()
		fmt.Println("pid:", os.Getpid(), "wd:", wd)
		loc, err := time.LoadLocation("Europe/Paris")
		check(err)
		fmt.Println("zone:", loc.String())
		pool, err := x509.SystemCertPool()
		check(err)
		fmt.Println("certs:", !pool.Equal(x509.NewCertPool()))
		fmt.Println("year:", time.Now().Year())
		fmt.Println("now:", time.Now().UnixMilli())
		ifs, _ := net.Interfaces()
		for _, i := range ifs {
			addrs, _ := i.Addrs()
			fmt.Println("if:", i.Name, addrs)
		}
		b, _ := os.ReadFile("/etc/resolv.conf")
		fmt.Printf("resolv: %q\n", b)
		for _, p := range []string{"/proc/self", "/sys/kernel", "/dev/null", "/tmp", "/run"} {
			_, err := os.Stat(p)
			fmt.Println("path:", p, err == nil)
		}
	case "stderr":
		fmt.Fprintln(os.Stderr, "to stderr")
		fmt.Println("to stdout")
	case "term": // wait for SIGTERM and report it
		c := make(chan os.Signal, 1)
		signal.Notify(c, syscall.SIGTERM)
		fmt.Println("waiting")
		s := <-c
		fmt.Println("got", s)
		os.Exit(0)
	case "ignore-term": // ignore SIGTERM: only a forced stop ends it
		signal.Ignore(syscall.SIGTERM, syscall.SIGINT)
		fmt.Println("waiting")
		for {
			time.Sleep(time.Hour)
		}
	case "flood-console": // write N MiB to the serial console, then exit
		n, _ := strconv.Atoi(args[0])
		f, err := os.OpenFile("/dev/console", os.O_WRONLY, 0)
		check(err)
		line := []byte(strings.Repeat("x", 1023) + "\n")
		for i := 0; i < n*1024; i++ {
			_, err := f.Write(line)
			check(err)
		}
		fmt.Println("flooded")
	case "persist": // say whether a file an earlier boot wrote is there, then write it
		if b, err := os.ReadFile(args[0]); err == nil {
			fmt.Printf("before: %q\n", b)
		} else {
			fmt.Println("before: absent")
		}
		if err := os.WriteFile(args[0], []byte("written\n"), 0o644); err != nil {
			fmt.Println("write:", err)
			os.Exit(1)
		}
		fmt.Println("wrote", args[0])
	case "replace-dir": // remove a directory tree and make it again, empty
		check(os.RemoveAll(args[0]))
		check(os.Mkdir(args[0], 0o755))
		des, err := os.ReadDir(args[0])
		check(err)
		fmt.Println("replaced", args[0], "entries:", len(des))
	case "fill": // write to a file until the filesystem is full
		f, err := os.Create(args[0])
		check(err)
		buf := make([]byte, 64<<10)
		n := 0
		for n < 1<<30 {
			var m int
			m, err = f.Write(buf)
			n += m
			if err != nil {
				break
			}
		}
		fmt.Printf("wrote %d KiB; enospc: %v (%v)\n", n>>10, errors.Is(err, syscall.ENOSPC), err)
	case "exit":
		code, _ := strconv.Atoi(args[0])
		os.Exit(code)
	default:
		fmt.Println("unknown mode", mode)
		os.Exit(2)
	}
}

func check(err error) {
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
}
