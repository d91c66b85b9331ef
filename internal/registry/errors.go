package registry

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// explained is an error whose message is already one line for the user;
// it keeps the cause for errors.Is and errors.As.
type explained struct {
	msg  string
	kind error
	err  error
}

func (e *explained) Error() string   { return e.msg }
func (e *explained) Unwrap() []error { return []error{e.kind, e.err} }

// Explain turns err, met while talking to the registry reg (HOST[:PORT])
// about what (a reference, or the registry itself), into one line naming
// the cause and what to do, wrapping ErrUnauthorized, ErrNotFound,
// ErrUnreachable or ErrPlainHTTP where one applies.
func (c *Client) Explain(reg, what string, err error) error {
	if err == nil {
		return nil
	}
	var ex *explained
	if errors.As(err, &ex) {
		return err
	}
	wrap := func(kind error, format string, args ...any) error {
		return &explained{msg: fmt.Sprintf(format, args...), kind: kind, err: err}
	}
	if errors.Is(err, ErrPlainHTTP) {
		c.tr.mu.Lock()
		last := c.tr.lastNet
		c.tr.mu.Unlock()
		why := "does not speak HTTPS"
		if last != nil {
			why = fmt.Sprintf("cannot be reached over HTTPS (%v)", last)
		}
		return wrap(ErrPlainHTTP, "%s: registry %s %s, and plain HTTP is only for loopback registries: pass --insecure-registry %s if it speaks HTTP on a network you trust", what, reg, why, reg)
	}
	var te *transport.Error
	if errors.As(err, &te) {
		codes := map[transport.ErrorCode]bool{}
		for _, d := range te.Errors {
			codes[d.Code] = true
		}
		switch {
		case te.StatusCode == http.StatusUnauthorized || te.StatusCode == http.StatusForbidden ||
			codes[transport.UnauthorizedErrorCode] || codes[transport.DeniedErrorCode]:
			return wrap(ErrUnauthorized, "%s: registry %s refused access (HTTP %d): log in with `nos login %s` (or check the repository's name and your rights)", what, reg, te.StatusCode, LoginName(reg))
		case te.StatusCode == http.StatusNotFound || codes[transport.ManifestUnknownErrorCode] || codes[transport.NameUnknownErrorCode]:
			return wrap(ErrNotFound, "%s: registry %s has no such image (manifest unknown)", what, reg)
		}
		return wrap(te, "%s: registry %s: %v", what, reg, te)
	}
	c.tr.mu.Lock()
	last := c.tr.lastNet
	c.tr.mu.Unlock()
	var ne net.Error
	switch {
	case last != nil && errors.Is(last, syscall.ECONNREFUSED):
		return wrap(ErrUnreachable, "%s: nothing answers at %s (connection refused): is the registry running, and is that its address?", what, reg)
	case last != nil && errors.As(last, &ne) && ne.Timeout():
		return wrap(ErrUnreachable, "%s: registry %s did not answer in time (connection, TLS handshake or response took longer than the limit, %v for a response)", what, reg, c.tr.timeout)
	case last != nil:
		return wrap(ErrUnreachable, "%s: cannot reach registry %s: %v", what, reg, last)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// LoginName is how `nos login` names a registry: docker.io for Docker
// Hub, HOST[:PORT] otherwise.
func LoginName(reg string) string {
	if reg == name.DefaultRegistry {
		return "docker.io"
	}
	return reg
}
