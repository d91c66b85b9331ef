// Command composeweb is the front end of the compose e2e test: PUT
// /v?x=VALUE stores VALUE in redis under key "v", GET /v reads it back.
// It reaches redis by its compose service name, with a minimal RESP
// client.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/textproto"
	"os"
	"strconv"
	"time"
)

func main() {
	addr := os.Getenv("REDIS_ADDR")
	if addr == "" {
		addr = "redis:6379"
	}
	http.HandleFunc("/v", func(w http.ResponseWriter, r *http.Request) {
		var reply string
		var err error
		switch r.Method {
		case http.MethodPut:
			reply, err = command(addr, "SET", "v", r.URL.Query().Get("x"))
		case http.MethodGet:
			reply, err = command(addr, "GET", "v")
		default:
			http.Error(w, "PUT or GET", http.StatusMethodNotAllowed)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		io.WriteString(w, reply)
	})
	log.Printf("listening on :8080, redis at %s", addr)
	log.Fatal(http.ListenAndServe(":8080", nil))
}

// command sends one command and reads a simple-string, error or bulk reply.
func command(addr string, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	req := fmt.Sprintf("*%d\r\n", len(args))
	for _, a := range args {
		req += fmt.Sprintf("$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := io.WriteString(c, req); err != nil {
		return "", err
	}
	br := bufio.NewReader(c)
	line, err := textproto.NewReader(br).ReadLine()
	if err != nil {
		return "", err
	}
	if line == "" {
		return "", errors.New("empty reply")
	}
	switch line[0] {
	case '+':
		return line[1:], nil
	case '-':
		return "", errors.New(line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < -1 {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n == -1 {
			return "", errors.New("no such key")
		}
		b := make([]byte, n+2)
		if _, err := io.ReadFull(br, b); err != nil {
			return "", err
		}
		return string(b[:n]), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}
