// Command interact is a test application for nos's interactive tests
// (run -i, -t, exec). Its first argument picks what it does.
package main

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Println("usage: interact MODE [ARGS]")
		os.Exit(2)
	}
	switch os.Args[1] {
	case "cat": // copy stdin to stdout, then say how it ended
		n, err := io.Copy(os.Stdout, os.Stdin)
		fmt.Printf("\nEOF after %d bytes, err=%v\n", n, err)
	case "winsize": // print the terminal's size
		ws, err := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
		if err != nil {
			fmt.Println("no terminal:", err)
			os.Exit(1)
		}
		fmt.Printf("tty %dx%d\n", ws.Row, ws.Col)
	case "lines": // echo stdin line by line, with the terminal size, until "quit"
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			ws, _ := unix.IoctlGetWinsize(0, unix.TIOCGWINSZ)
			fmt.Printf("got %q size %dx%d\n", sc.Text(), ws.Row, ws.Col)
			if sc.Text() == "quit" {
				return
			}
		}
		fmt.Println("EOF")
	case "exit": // exit with the given code
		code, _ := strconv.Atoi(os.Args[2])
		fmt.Println("exiting", code)
		os.Exit(code)
	case "caps": // the capability sets the process was started with
		printCaps()
	case "sleep": // run until stopped
		fmt.Println("sleeping")
		time.Sleep(time.Hour)
	default:
		fmt.Println("unknown mode", os.Args[1])
		os.Exit(2)
	}
}

// printCaps prints the Cap* lines of /proc/self/status.
func printCaps() {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		fmt.Println("no status:", err)
		os.Exit(1)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "Cap") {
			fmt.Println(l)
		}
	}
}
