// Command probe is a test application for nos's integration tests. Its
// first argument picks what it reports about the guest it runs in.
package main

import (
	cryptorand "crypto/rand"
	"crypto/x509"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
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
			if b, err := os.ReadFile("/proc/sys/net/ipv4/conf/" + i.Name + "/arp_notify"); err == nil {
				fmt.Println("arp_notify:", i.Name, strings.TrimSpace(string(b)))
			}
		}
		b, _ := os.ReadFile("/etc/resolv.conf")
		fmt.Printf("resolv: %q\n", b)
		status, _ := os.ReadFile("/proc/self/status")
		for _, l := range strings.Split(string(status), "\n") {
			if strings.HasPrefix(l, "CapBnd:") || strings.HasPrefix(l, "CapEff:") {
				fmt.Println(l)
			}
		}
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
	case "attack-host": // attack-host MIB: flood stdout with MIB MiB, then try to reach the host's channels
		n, _ := strconv.Atoi(args[0])
		line := []byte(strings.Repeat("y", 1023) + "\n")
		for i := 0; i < n*1024; i++ {
			if _, err := os.Stdout.Write(line); err != nil {
				fmt.Fprintln(os.Stderr, "stdout:", err)
				os.Exit(3)
			}
		}
		attackHost() // after the flood: the log keeps its newest part
		fmt.Fprintln(os.Stderr, "flooded")
	case "chatter": // chatter: a numbered 1 KiB line on stdout every 20 ms, forever
		pad := strings.Repeat("c", 1000)
		for i := 0; ; i++ {
			fmt.Printf("chatter %d %s\n", i, pad)
			time.Sleep(20 * time.Millisecond)
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
	case "diskbench": // diskbench DIR: sequential write + fsync, then 4 KiB writes each fdatasync'd
		diskbench(args[0])
	case "kv": // the key-value store of the volume tests: kv DIR
		kv(args[0])
	case "files": // list DIR's files as "path uid:gid mode size", then write DIR/NAME and wait for SIGTERM
		files(args[0], args[1])
	case "serve": // serve TEXT [ADDR]: answer TEXT on ADDR (:8080), say "waiting"
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, args[0]) })
		addr := ":8080"
		if len(args) > 1 {
			addr = args[1]
		}
		l, err := net.Listen("tcp", addr)
		check(err)
		fmt.Println("waiting")
		check(http.Serve(l, nil))
	case "random": // random: on :8080, /dev/urandom's and crypto/rand's bytes, the time, the hostname and /run/nos/restored.json
		http.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
			u := make([]byte, 16)
			f, err := os.Open("/dev/urandom")
			check(err)
			_, err = io.ReadFull(f, u)
			f.Close()
			check(err)
			c := make([]byte, 16)
			_, err = cryptorand.Read(c)
			check(err)
			host, _ := os.Hostname()
			restored, _ := os.ReadFile("/run/nos/restored.json")
			fmt.Fprintf(w, "urandom %x\ncrypto %x\ntime %d\nhost %s\nrestored %s\n", u, c, time.Now().Unix(), host, strings.TrimSpace(string(restored)))
		})
		l, err := net.Listen("tcp", ":8080")
		check(err)
		fmt.Println("waiting")
		check(http.Serve(l, nil))
	case "fetch-loop": // fetch-loop URL...: GET each URL every second, printing "got URL BODY" or "err URL ..."
		fmt.Println("waiting")
		c := &http.Client{Timeout: 2 * time.Second}
		for {
			for _, u := range args {
				r, err := c.Get(u)
				if err != nil {
					fmt.Println("err", u, err)
					continue
				}
				b, _ := io.ReadAll(r.Body)
				r.Body.Close()
				fmt.Println("got", u, string(b))
			}
			time.Sleep(time.Second)
		}
	case "lookup-loop": // lookup-loop NAME: resolve NAME every second, printing "lookup NAME ADDRS" or "lookup NAME err"
		fmt.Println("waiting")
		for {
			addrs, err := net.LookupHost(args[0])
			if err != nil {
				fmt.Println("lookup", args[0], "err")
			} else {
				fmt.Println("lookup", args[0], strings.Join(addrs, ","))
			}
			time.Sleep(time.Second)
		}
	case "netbench-server": // netbench-server: a sink on :5001 and a 64-byte echo on :5002 (and "waiting")
		netbenchServer()
	case "netbench": // netbench HOST: 64 MiB to HOST:5001 (MB/s), then 500 64-byte round trips to HOST:5002 (median µs)
		netbench(args[0])
	case "share": // share RW RO OUTSIDE: what a guest can do with host directories (see shareChecks)
		shareChecks(args[0], args[1], args[2])
	case "fsbench": // fsbench DIR: read DIR/big.dat cold, stat every file under DIR/tree
		fsbench(args[0])
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

// kv serves an append-only log of records in dir on :8080: POST /put?v=X
// appends "X crc\n" and answers "ok" only after fsync; GET /all returns
// the records whose checksum is right, one per line.
func kv(dir string) {
	f, err := os.OpenFile(dir+"/log", os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	check(err)
	d, err := os.Open(dir)
	check(err)
	check(d.Sync()) // the log's directory entry is durable too
	var mu sync.Mutex
	http.HandleFunc("/put", func(w http.ResponseWriter, r *http.Request) {
		v := r.URL.Query().Get("v")
		mu.Lock()
		defer mu.Unlock()
		if _, err := fmt.Fprintf(f, "%s %08x\n", v, crc32.ChecksumIEEE([]byte(v))); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		if err := f.Sync(); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	http.HandleFunc("/all", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(dir + "/log")
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			v, sum, ok := strings.Cut(line, " ")
			if ok && sum == fmt.Sprintf("%08x", crc32.ChecksumIEEE([]byte(v))) {
				fmt.Fprintln(w, v)
			}
		}
	})
	fmt.Println("kv serving")
	check(http.ListenAndServe(":8080", nil))
}

// files prints what dir holds, writes dir/name, and waits for SIGTERM.
func files(dir, name string) {
	check(filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
		if err != nil {
			fmt.Println("unreadable", p) // lost+found, for a non-root app
			return nil
		}
		fi, err := de.Info()
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		fmt.Printf("file %s %d:%d %o %d\n", p, st.Uid, st.Gid, fi.Mode().Perm(), fi.Size())
		return nil
	}))
	if err := os.WriteFile(filepath.Join(dir, name), []byte("written by "+strconv.Itoa(os.Getuid())+"\n"), 0o644); err != nil {
		fmt.Println("write:", err)
	} else {
		fmt.Println("wrote", name)
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	fmt.Println("waiting")
	<-sigs
}

// diskbench measures what the volume benchmarks report: 64 MiB written in
// 1 MiB blocks then fsync'd (MB/s), and 500 4 KiB writes at random
// offsets of that file, each followed by fdatasync (ops/s).
func diskbench(dir string) {
	p := filepath.Join(dir, "bench.dat")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	check(err)
	defer os.Remove(p)
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	start := time.Now()
	for i := 0; i < 64; i++ {
		_, err := f.Write(buf)
		check(err)
	}
	check(f.Sync())
	seq := time.Since(start)
	start = time.Now()
	x := uint64(88172645463325252)
	for i := 0; i < 500; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		off := int64(x%(64<<8)) * 4096
		_, err := f.WriteAt(buf[:4096], off)
		check(err)
		check(syscall.Fdatasync(int(f.Fd())))
	}
	rnd := time.Since(start)
	check(f.Sync())
	check(f.Close())
	rd := coldRead(p)
	fmt.Printf("diskbench seq_write_fsync_MBps=%.1f rand4k_fdatasync_ops=%.0f seq_read_cold_MBps=%.1f\n", 64/seq.Seconds(), 500/rnd.Seconds(), rd)
}

// coldRead reads the file at p from start to end in 1 MiB blocks after
// dropping its pages from this kernel's cache (POSIX_FADV_DONTNEED needs
// no privilege), and returns MB/s.
func coldRead(p string) float64 {
	f, err := os.Open(p)
	check(err)
	defer f.Close()
	check(unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED))
	buf := make([]byte, 1<<20)
	start := time.Now()
	n, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, buf)
	check(err)
	return float64(n) / 1e6 / time.Since(start).Seconds()
}

// fsbench measures what the virtiofs benchmarks report: dir/big.dat read
// cold (MB/s), then an lstat of every entry under dir/tree (stats/s).
func fsbench(dir string) {
	rd := coldRead(filepath.Join(dir, "big.dat"))
	start := time.Now()
	n := 0
	check(filepath.WalkDir(filepath.Join(dir, "tree"), func(p string, de fs.DirEntry, err error) error {
		check(err)
		_, err = os.Lstat(p)
		check(err)
		n++
		return nil
	}))
	fmt.Printf("fsbench seq_read_cold_MBps=%.1f stats_per_s=%.0f files=%d\n", rd, float64(n)/time.Since(start).Seconds(), n)
}

// shareChecks tries what the host-directory tests expect of a guest, and
// prints one "check NAME: RESULT" line each. rw is shared read-write, ro
// read-only; outside is a host path next to them the guest must not
// reach. The host placed links in rw: abs-link (to outside, by absolute
// path) and rel-link (to it through ".."), and rw/in.txt.
func shareChecks(rw, ro, outside string) {
	res := func(name string, err error) {
		if err == nil {
			fmt.Printf("check %s: ok\n", name)
			return
		}
		var en syscall.Errno
		if errors.As(err, &en) {
			fmt.Printf("check %s: %s\n", name, unix.ErrnoName(en))
			return
		}
		fmt.Printf("check %s: %v\n", name, err)
	}
	readRes := func(name, p string) {
		b, err := os.ReadFile(p)
		if err == nil {
			fmt.Printf("check %s: read %q\n", name, b)
			return
		}
		res(name, err)
	}
	// Escapes: every path a guest can write that points out of rw.
	readRes("abs-link", filepath.Join(rw, "abs-link"))
	readRes("rel-link", filepath.Join(rw, "rel-link"))
	readRes("dotdot", filepath.Join(rw, "..", filepath.Base(filepath.Dir(outside)), filepath.Base(outside)))
	readRes("outside-path", outside)
	self, err := os.Executable()
	check(err)
	res("hardlink-in", os.Link(self, filepath.Join(rw, "hard")))
	res("hardlink-out", os.Link(filepath.Join(rw, "in.txt"), "/tmp/hard-out"))
	res("rename-out", os.Rename(filepath.Join(rw, "in.txt"), "/tmp/renamed"))
	// Writes: rw shows them on the host byte for byte; ro refuses them,
	// even once the guest has remounted it read-write.
	data := make([]byte, 1<<20+123)
	for i := range data {
		data[i] = byte(i*31 + i>>8)
	}
	res("rw-write", os.WriteFile(filepath.Join(rw, "from-guest.dat"), data, 0o640))
	fmt.Printf("check rw-crc: %08x\n", crc32.ChecksumIEEE(data))
	res("ro-write", os.WriteFile(filepath.Join(ro, "in.txt"), []byte("changed"), 0o644))
	res("ro-create", os.WriteFile(filepath.Join(ro, "new.txt"), []byte("new"), 0o644))
	res("ro-remount", unix.Mount("", ro, "", unix.MS_REMOUNT, ""))
	res("ro-write-after-remount", os.WriteFile(filepath.Join(ro, "in.txt"), []byte("changed"), 0o644))
	res("ro-unlink-after-remount", os.Remove(filepath.Join(ro, "in.txt")))
	readRes("ro-read", filepath.Join(ro, "in.txt"))
}

func netbenchServer() {
	sink, err := net.Listen("tcp", ":5001")
	check(err)
	echo, err := net.Listen("tcp", ":5002")
	check(err)
	go func() {
		for {
			c, err := sink.Accept()
			if err != nil {
				return
			}
			go func() {
				n, _ := io.Copy(io.Discard, c)
				fmt.Fprintf(c, "%d\n", n)
				c.Close()
			}()
		}
	}()
	fmt.Println("waiting")
	for {
		c, err := echo.Accept()
		check(err)
		go func() {
			defer c.Close()
			buf := make([]byte, 64)
			for {
				if _, err := io.ReadFull(c, buf); err != nil {
					return
				}
				if _, err := c.Write(buf); err != nil {
					return
				}
			}
		}()
	}
}

func netbench(host string) {
	var c net.Conn
	var err error
	for range 60 { // the server may still be booting
		if c, err = net.DialTimeout("tcp", net.JoinHostPort(host, "5001"), 2*time.Second); err == nil {
			break
		}
		time.Sleep(time.Second)
	}
	check(err)
	buf := make([]byte, 1<<20)
	start := time.Now()
	for range 64 {
		_, err := c.Write(buf)
		check(err)
	}
	check(c.(*net.TCPConn).CloseWrite())
	_, err = io.ReadAll(c) // the sink's count, after it read everything
	check(err)
	mbps := 64 * 1.048576 / time.Since(start).Seconds()
	c.Close()
	e, err := net.Dial("tcp", net.JoinHostPort(host, "5002"))
	check(err)
	defer e.Close()
	msg := make([]byte, 64)
	var rtts []time.Duration
	for range 500 {
		t := time.Now()
		_, err := e.Write(msg)
		check(err)
		_, err = io.ReadFull(e, msg)
		check(err)
		rtts = append(rtts, time.Since(t))
	}
	slices.Sort(rtts)
	fmt.Printf("netbench MBps=%.1f rtt_median_us=%d\n", mbps, rtts[len(rtts)/2].Microseconds())
}

// attackHost tries, as the application (root, no capabilities), to open
// the virtio serial ports nos-init talks to the host on, or to make a
// node for one, and reports each try as "attack: WHAT: RESULT".
func attackHost() {
	ports, _ := filepath.Glob("/sys/class/virtio-ports/*")
	fmt.Fprintln(os.Stderr, "attack: ports:", len(ports))
	for _, p := range ports {
		name, _ := os.ReadFile(p + "/name")
		dev := "/dev/" + filepath.Base(p)
		f, err := os.OpenFile(dev, os.O_RDWR, 0)
		if err == nil {
			f.Write([]byte(`{"type":"exit","code":0}` + "\n"))
			f.Close()
			fmt.Fprintf(os.Stderr, "attack: open %s (%s): OPENED\n", dev, strings.TrimSpace(string(name)))
		} else {
			fmt.Fprintf(os.Stderr, "attack: open %s (%s): %v\n", dev, strings.TrimSpace(string(name)), err)
		}
		b, _ := os.ReadFile(p + "/dev")
		var maj, min uint32
		fmt.Sscanf(strings.TrimSpace(string(b)), "%d:%d", &maj, &min)
		err = unix.Mknod("/tmp/port", unix.S_IFCHR|0o600, int(unix.Mkdev(maj, min)))
		if err == nil {
			fmt.Fprintln(os.Stderr, "attack: mknod: MADE")
			os.Remove("/tmp/port")
		} else {
			fmt.Fprintln(os.Stderr, "attack: mknod:", err)
		}
	}
	fmt.Fprintln(os.Stderr, "attack: uid", os.Getuid())
}
