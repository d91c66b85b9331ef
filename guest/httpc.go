package guest

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"time"
)

// The init's HTTP client: just what a cloud's metadata service and
// Azure's wire server need, over net.Dial, so that nos-init does not link
// net/http (and the TLS stack it pulls in). Each request is one
// connection (Connection: close). Replies come from outside the guest,
// so everything about them is bounded: the status line, the headers, the
// body.
const (
	maxHeaderLine  = 4096     // bytes in the status line or in one header line
	maxHeaderBytes = 32 << 10 // bytes in all header lines
	maxHeaders     = 100
	maxInterim     = 5 // 1xx replies skipped before the real one
)

// httpRequest is one request to a server the init talks to.
type httpRequest struct {
	Method string
	Path   string // verbatim into the request line: checkPath's rules
	Host   string // the Host header
	Header [][2]string
	Body   []byte
}

// httpReply is a server's answer: its status and its body, whatever the
// status.
type httpReply struct {
	Status int
	Body   []byte
}

// httpDo sends req to addr and reads the reply, whose body may be at
// most maxBody bytes. ctx bounds the whole exchange.
func httpDo(ctx context.Context, addr netip.AddrPort, req httpRequest, maxBody int) (*httpReply, error) {
	if err := checkRequest(req); err != nil {
		return nil, err
	}
	var d net.Dialer
	conn, err := d.DialTCP(ctx, "tcp", netip.AddrPort{}, addr)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(requestBytes(req)); err != nil {
		return nil, fmt.Errorf("sending %s %s: %w", req.Method, req.Path, err)
	}
	r, err := readReply(conn, maxBody)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, err)
	}
	return r, nil
}

// checkRequest refuses a request line or header that could end early
// or inject another header.
func checkRequest(req httpRequest) error {
	if req.Path == "" || checkPath(req.Path) != nil {
		return fmt.Errorf("HTTP path %q: want printable ASCII starting with /", req.Path)
	}
	for _, s := range append([]string{req.Method, req.Host}, flatten(req.Header)...) {
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < ' ' || c == 0x7f {
				return fmt.Errorf("HTTP request field %q has a control character", s)
			}
		}
	}
	return nil
}

func flatten(h [][2]string) []string {
	var out []string
	for _, kv := range h {
		out = append(out, kv[0], kv[1])
	}
	return out
}

// requestBytes is req on the wire, as HTTP/1.1.
func requestBytes(req httpRequest) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: nos-init\r\nConnection: close\r\n", req.Method, req.Path, req.Host)
	for _, kv := range req.Header {
		fmt.Fprintf(&b, "%s: %s\r\n", kv[0], kv[1])
	}
	if req.Body != nil || req.Method == "POST" || req.Method == "PUT" {
		fmt.Fprintf(&b, "Content-Length: %d\r\n", len(req.Body))
	}
	b.WriteString("\r\n")
	b.Write(req.Body)
	return b.Bytes()
}

// errBodyTooLarge: the reply's body is over the caller's bound.
var errBodyTooLarge = errors.New("HTTP reply body too large")

// readReply reads one HTTP/1.x reply: interim 1xx replies are skipped;
// the body is delimited by Content-Length, chunked transfer coding, or
// the end of the connection, and may be at most maxBody bytes.
func readReply(r io.Reader, maxBody int) (*httpReply, error) {
	br := bufio.NewReaderSize(r, maxHeaderLine)
	for range maxInterim + 1 {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("connection closed without an HTTP reply")
			}
			return nil, err
		}
		code, err := parseStatusLine(line)
		if err != nil {
			return nil, err
		}
		h, err := readHeaders(br)
		if err != nil {
			return nil, err
		}
		if code < 200 {
			continue
		}
		rep := &httpReply{Status: code}
		if code == 204 || code == 304 {
			return rep, nil
		}
		rep.Body, err = readBody(br, h, maxBody)
		return rep, err
	}
	return nil, fmt.Errorf("more than %d interim HTTP replies", maxInterim)
}

// readLine returns one line without its line ending; a line longer than
// the reader's buffer is an error.
func readLine(br *bufio.Reader) ([]byte, error) {
	line, err := br.ReadSlice('\n')
	switch {
	case errors.Is(err, bufio.ErrBufferFull):
		return nil, fmt.Errorf("HTTP line longer than %d bytes", maxHeaderLine)
	case errors.Is(err, io.EOF) && len(line) > 0:
		return nil, fmt.Errorf("connection closed inside the HTTP line %q", truncate(line))
	case err != nil:
		return nil, err
	}
	return bytes.TrimSuffix(line[:len(line)-1], []byte("\r")), nil
}

// replyHeaders is what the reader needs of the headers.
type replyHeaders struct {
	contentLength int64 // -1: none
	chunked       bool
}

func readHeaders(br *bufio.Reader) (replyHeaders, error) {
	h := replyHeaders{contentLength: -1}
	total := 0
	for n := 0; ; n++ {
		line, err := readLine(br)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return h, errors.New("connection closed inside the HTTP headers")
			}
			return h, err
		}
		if len(line) == 0 {
			return h, nil
		}
		if total += len(line); total > maxHeaderBytes || n >= maxHeaders {
			return h, fmt.Errorf("HTTP headers over %d bytes or %d lines", maxHeaderBytes, maxHeaders)
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || bytes.ContainsAny(name, " \t") {
			return h, fmt.Errorf("not an HTTP header line: %q", truncate(line))
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			n, err := strconv.ParseInt(string(value), 10, 64)
			if err != nil || n < 0 || (h.contentLength >= 0 && n != h.contentLength) {
				return h, fmt.Errorf("bad HTTP Content-Length %q", truncate(value))
			}
			h.contentLength = n
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			if !bytes.EqualFold(value, []byte("chunked")) {
				return h, fmt.Errorf("unsupported HTTP Transfer-Encoding %q", truncate(value))
			}
			h.chunked = true
		}
	}
}

func readBody(br *bufio.Reader, h replyHeaders, maxBody int) ([]byte, error) {
	switch {
	case h.chunked:
		return readChunked(br, maxBody)
	case h.contentLength >= 0:
		if h.contentLength > int64(maxBody) {
			return nil, fmt.Errorf("%w: %d bytes, at most %d", errBodyTooLarge, h.contentLength, maxBody)
		}
		b := make([]byte, h.contentLength)
		if _, err := io.ReadFull(br, b); err != nil {
			return nil, fmt.Errorf("reading the HTTP body: %w", err)
		}
		return b, nil
	default:
		b, err := io.ReadAll(io.LimitReader(br, int64(maxBody)+1))
		if err != nil {
			return nil, fmt.Errorf("reading the HTTP body: %w", err)
		}
		if len(b) > maxBody {
			return nil, fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, maxBody)
		}
		return b, nil
	}
}

// readChunked reads a chunked body (RFC 9112 section 7.1): hex sizes,
// chunk extensions ignored, trailers read and dropped.
func readChunked(br *bufio.Reader, maxBody int) ([]byte, error) {
	var body []byte
	for {
		line, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("reading an HTTP chunk size: %w", err)
		}
		size, _, _ := bytes.Cut(line, []byte(";"))
		size = bytes.TrimSpace(size)
		n, err := strconv.ParseUint(string(size), 16, 32)
		if err != nil || len(size) == 0 {
			return nil, fmt.Errorf("bad HTTP chunk size %q", truncate(line))
		}
		if n == 0 {
			if _, err := readHeaders(br); err != nil { // trailers
				return nil, err
			}
			return body, nil
		}
		if n > uint64(maxBody-len(body)) {
			return nil, fmt.Errorf("%w: more than %d bytes", errBodyTooLarge, maxBody)
		}
		start := len(body)
		body = append(body, make([]byte, n)...)
		if _, err := io.ReadFull(br, body[start:]); err != nil {
			return nil, fmt.Errorf("reading an HTTP chunk: %w", err)
		}
		if crlf, err := readLine(br); err != nil || len(crlf) != 0 {
			return nil, errors.New("HTTP chunk not followed by a line ending")
		}
	}
}
