package compose

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/compose-spec/compose-go/v2/types"

	"github.com/nosproject/nos/instance"
	"github.com/nosproject/nos/vmm"
)

// Docker's health check defaults.
const (
	defaultHealthInterval = 30 * time.Second
	defaultHealthTimeout  = 30 * time.Second
	defaultHealthRetries  = 3
)

// ErrUnmappable: a healthcheck test is a command nos cannot run: nos's
// health checks are an HTTP GET or a TCP connect made inside the guest.
var ErrUnmappable = errors.New("cannot be mapped to a nos health check (an HTTP GET or a TCP connect)")

// healthCheck maps the service's healthcheck, if any. A test nos cannot
// map is a warning (the service runs without a health check), not an
// error.
func healthCheck(sc types.ServiceConfig, published []vmm.Forward) (*instance.HealthCheck, string, error) {
	h := sc.HealthCheck
	if h == nil || h.Disable || len(h.Test) == 0 || h.Test[0] == "NONE" {
		return nil, "", nil
	}
	check, err := MapTest(h.Test)
	if errors.Is(err, ErrUnmappable) {
		return nil, fmt.Sprintf("healthcheck: %v; the service runs without one", err), nil
	}
	if err != nil {
		return nil, "", fmt.Errorf("healthcheck: %w", err)
	}
	if check.Port == 0 {
		check.Port = guestPort(sc, published)
		if check.Port == 0 {
			return nil, fmt.Sprintf("healthcheck: test %q: no port to probe (give it in the test, or publish or expose one); the service runs without one", strings.Join(h.Test, " ")), nil
		}
	}
	check.Interval, check.Timeout, check.Retries = defaultHealthInterval, defaultHealthTimeout, defaultHealthRetries
	if h.Interval != nil {
		check.Interval = time.Duration(*h.Interval)
	}
	if h.Timeout != nil {
		check.Timeout = time.Duration(*h.Timeout)
	}
	if h.Retries != nil {
		check.Retries = int(min(*h.Retries, 1000))
	}
	if h.StartPeriod != nil {
		check.StartPeriod = time.Duration(*h.StartPeriod)
	}
	if check.Interval <= 0 || check.Timeout <= 0 || check.Retries < 1 || check.StartPeriod < 0 {
		return nil, "", errors.New("healthcheck: interval and timeout must be positive, retries at least 1")
	}
	return check, "", nil
}

// guestPort is the port a test that names none probes: the first
// published guest port, else the first exposed one.
func guestPort(sc types.ServiceConfig, published []vmm.Forward) int {
	for _, f := range published {
		if f.Proto == "tcp" {
			return f.GuestPort
		}
	}
	for _, e := range sc.Expose {
		p, _, _ := strings.Cut(e, "/")
		if n, err := strconv.Atoi(p); err == nil && n > 0 && n < 65536 {
			return n
		}
	}
	return 0
}

// MapTest maps a healthcheck test to a nos health check: curl or wget of
// a local http:// URL to an HTTP GET; redis-cli ping, pg_isready,
// mysqladmin ping and nc -z to a TCP connect. Port 0 means the test names
// no port: the caller picks the service's. Anything else is ErrUnmappable.
func MapTest(test []string) (*instance.HealthCheck, error) {
	if len(test) == 0 {
		return nil, fmt.Errorf("empty test: %w", ErrUnmappable)
	}
	var argv []string
	switch test[0] {
	case "CMD":
		argv = test[1:]
	case "CMD-SHELL":
		if len(test) != 2 {
			return nil, fmt.Errorf("CMD-SHELL takes one command line: %w", ErrUnmappable)
		}
		var err error
		if argv, err = shellWords(test[1]); err != nil {
			return nil, fmt.Errorf("test %q: %v: %w", test[1], err, ErrUnmappable)
		}
	default:
		return nil, fmt.Errorf("test %q: want CMD, CMD-SHELL or NONE first: %w", strings.Join(test, " "), ErrUnmappable)
	}
	quoted := strconv.Quote(strings.Join(argv, " "))
	if len(argv) == 0 {
		return nil, fmt.Errorf("test %s: %w", quoted, ErrUnmappable)
	}
	prog := argv[0]
	if i := strings.LastIndex(prog, "/"); i >= 0 {
		prog = prog[i+1:]
	}
	args := argv[1:]
	var hc *instance.HealthCheck
	var err error
	switch prog {
	case "curl":
		hc, err = httpTest(args, curlValueFlags)
	case "wget":
		hc, err = httpTest(args, wgetValueFlags)
	case "redis-cli":
		hc, err = pingTest(args, "-p", 6379, "ping")
	case "pg_isready":
		hc, err = pingTest(args, "-p", 5432, "")
	case "mysqladmin":
		hc, err = pingTest(args, "-P", 3306, "ping")
	case "nc":
		hc, err = ncTest(args)
	default:
		err = fmt.Errorf("%s is no HTTP client or ping nos knows", prog)
	}
	if err != nil {
		return nil, fmt.Errorf("test %s: %v: %w", quoted, err, ErrUnmappable)
	}
	return hc, nil
}

// shellWords splits a CMD-SHELL line into words, with '...' and "..."
// quoting, and drops a trailing "|| exit 1" (or "|| false"): what the
// check means is the command's own success. Other shell syntax is
// refused.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\'' || c == '"':
			j := strings.IndexByte(s[i+1:], c)
			if j < 0 {
				return nil, errors.New("unterminated quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inWord = true
		case c == ' ' || c == '\t' || c == '\n':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			i++
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	if inWord {
		words = append(words, cur.String())
	}
	if n := len(words); n >= 3 && words[n-3] == "||" && (words[n-2] == "exit" && words[n-1] == "1") {
		words = words[:n-3]
	} else if n >= 2 && words[n-2] == "||" && words[n-1] == "false" {
		words = words[:n-2]
	}
	for _, w := range words {
		if strings.ContainsAny(w, "|&;<>$`") && !strings.Contains(w, "://") {
			return nil, fmt.Errorf("shell syntax %q", w)
		}
	}
	return words, nil
}

// Flags of curl and wget that take a value.
var (
	curlValueFlags = map[string]bool{"-H": true, "--header": true, "-m": true, "--max-time": true, "--connect-timeout": true, "-o": true, "--output": true,
		"-A": true, "--user-agent": true, "-w": true, "--write-out": true, "--retry": true, "-u": true, "--user": true, "-X": true, "--request": true}
	wgetValueFlags = map[string]bool{"-O": true, "-T": true, "-t": true, "--tries": true, "-U": true, "--header": true, "-o": true}
)

func httpTest(args []string, valueFlags map[string]bool) (*instance.HealthCheck, error) {
	var raw string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "-X" || a == "--request":
			if i+1 < len(args) && !strings.EqualFold(args[i+1], "GET") {
				return nil, fmt.Errorf("method %s: nos health checks GET", args[i+1])
			}
			i++
		case valueFlags[a]:
			i++
		case strings.HasPrefix(a, "-"):
		case raw != "":
			return nil, errors.New("more than one URL")
		default:
			raw = a
		}
	}
	if raw == "" {
		return nil, errors.New("no URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "http://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" {
		return nil, fmt.Errorf("scheme %s: nos health checks speak plain HTTP", u.Scheme)
	}
	if !localHost(u.Hostname()) {
		return nil, fmt.Errorf("host %s: nos health checks probe the guest itself (localhost)", u.Hostname())
	}
	port := 80
	if p := u.Port(); p != "" {
		if port, err = strconv.Atoi(p); err != nil || port < 1 || port > 65535 {
			return nil, fmt.Errorf("port %q", p)
		}
	}
	path := u.EscapedPath()
	if path == "" {
		path = "/"
	}
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return &instance.HealthCheck{HTTPPath: path, Port: port}, nil
}

func localHost(h string) bool {
	switch h {
	case "localhost", "127.0.0.1", "0.0.0.0", "::1", "":
		return true
	}
	return false
}

// pingTest maps a database client's liveness command to a TCP connect on
// its -p port, else its default port. verb, when set, must be the
// command's only word (redis-cli ping).
func pingTest(args []string, portFlag string, defPort int, verb string) (*instance.HealthCheck, error) {
	port := defPort
	var words []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == portFlag || a == "--port":
			if i+1 >= len(args) {
				return nil, fmt.Errorf("%s without a port", a)
			}
			n, err := strconv.Atoi(args[i+1])
			if err != nil || n < 1 || n > 65535 {
				return nil, fmt.Errorf("port %q", args[i+1])
			}
			port = n
			i++
		case a == "-h" || a == "--host":
			if i+1 >= len(args) || !localHost(args[i+1]) {
				return nil, errors.New("a host other than localhost")
			}
			i++
		case strings.HasPrefix(a, "-"):
			if i+1 < len(args) && !strings.HasPrefix(args[i+1], "-") && (a == "-U" || a == "-d" || a == "-u" || a == "-a") {
				i++ // a user, database or password: not what a connect checks
			}
		default:
			words = append(words, a)
		}
	}
	if verb != "" && (len(words) != 1 || !strings.EqualFold(words[0], verb)) {
		return nil, fmt.Errorf("only %q maps to a TCP connect", verb)
	}
	if verb == "" && len(words) > 0 {
		return nil, fmt.Errorf("arguments %q", strings.Join(words, " "))
	}
	return &instance.HealthCheck{Port: port}, nil
}

// ncTest maps nc -z HOST PORT.
func ncTest(args []string) (*instance.HealthCheck, error) {
	z := false
	var words []string
	for _, a := range args {
		if strings.HasPrefix(a, "-") {
			z = z || strings.Contains(a, "z")
			continue
		}
		words = append(words, a)
	}
	if !z || len(words) != 2 || !localHost(words[0]) {
		return nil, errors.New("only nc -z localhost PORT maps to a TCP connect")
	}
	n, err := strconv.Atoi(words[1])
	if err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("port %q", words[1])
	}
	return &instance.HealthCheck{Port: n}, nil
}
