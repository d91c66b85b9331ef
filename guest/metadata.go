package guest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// The platforms' metadata services, by link-local address: never by name,
// so nothing depends on DNS, and a guest elsewhere sends nothing outside
// its link.
var (
	metadataAddr   = netip.MustParseAddrPort("169.254.169.254:80")
	azureWireAddr  = netip.MustParseAddrPort("168.63.129.16:80")
	metadataHost   = "169.254.169.254"
	azureWireHost  = "168.63.129.16"
	maxMetadata    = 256 << 10 // bytes in one reply: user-data is at most 64 KiB, base64 in Azure's JSON
	metadataTries  = 4
	metadataPause  = 500 * time.Millisecond
	metadataPerTry = 3 * time.Second
)

// metadata is what a platform says about this guest. UserData is nil
// when it has none.
type metadata struct {
	Hostname string
	UserData []byte
}

// metadataClient asks a platform's services; tests point it at loopback.
type metadataClient struct {
	Metadata, Wire netip.AddrPort
}

// defaultMetadataClient talks to the real addresses.
var defaultMetadataClient = metadataClient{Metadata: metadataAddr, Wire: azureWireAddr}

// errNotFound is a 404: the platform has no such item (no user-data).
var errNotFound = errors.New("not found")

// fetch does req with retries: a metadata service may not answer in the
// first moments after the lease, or answer 5xx, 410 (Azure's IMDS while
// the VM is provisioned) or 429 (too many requests) meanwhile. 404 and
// other 4xx are answers, not retried. It returns the body of a 200.
func fetch(ctx context.Context, addr netip.AddrPort, req httpRequest) ([]byte, error) {
	var err error
	for try := range metadataTries {
		if try > 0 {
			select {
			case <-ctx.Done():
				return nil, fmt.Errorf("%w (last: %v)", ctx.Err(), err)
			case <-time.After(metadataPause << (try - 1)):
			}
		}
		var rep *httpReply
		tctx, cancel := context.WithTimeout(ctx, metadataPerTry)
		rep, err = httpDo(tctx, addr, req, maxMetadata)
		cancel()
		switch {
		case err != nil:
			continue
		case rep.Status == 200:
			return rep.Body, nil
		case rep.Status == 404:
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.Path, errNotFound)
		case rep.Status >= 500 || rep.Status == 410 || rep.Status == 429:
			err = fmt.Errorf("%s %s: HTTP %d", req.Method, req.Path, rep.Status)
			continue
		default:
			return nil, fmt.Errorf("%s %s: HTTP %d", req.Method, req.Path, rep.Status)
		}
	}
	return nil, err
}

// optional turns a 404 into nothing.
func optional(b []byte, err error) ([]byte, error) {
	if errors.Is(err, errNotFound) {
		return nil, nil
	}
	return b, err
}

// aws asks EC2's instance metadata service, version 2: a session token
// first (PUT), then the hostname and user-data with it.
func (c metadataClient) aws(ctx context.Context) (*metadata, error) {
	token, err := fetch(ctx, c.Metadata, httpRequest{Method: "PUT", Path: "/latest/api/token", Host: metadataHost,
		Header: [][2]string{{"X-aws-ec2-metadata-token-ttl-seconds", "300"}}})
	if err != nil {
		return nil, fmt.Errorf("IMDSv2 token: %w", err)
	}
	t := strings.TrimSpace(string(token))
	get := func(path string) ([]byte, error) {
		return optional(fetch(ctx, c.Metadata, httpRequest{Method: "GET", Path: path, Host: metadataHost,
			Header: [][2]string{{"X-aws-ec2-metadata-token", t}}}))
	}
	var m metadata
	host, err := get("/latest/meta-data/local-hostname")
	if err != nil {
		logf("aws: no hostname: %v", err) // optional: the image's name stays
	}
	m.Hostname = shortHostname(string(host))
	if m.UserData, err = get("/latest/user-data"); err != nil {
		return nil, err
	}
	return &m, nil
}

// gce asks Google's metadata server.
func (c metadataClient) gce(ctx context.Context) (*metadata, error) {
	get := func(path string) ([]byte, error) {
		return optional(fetch(ctx, c.Metadata, httpRequest{Method: "GET", Path: path, Host: "metadata.google.internal",
			Header: [][2]string{{"Metadata-Flavor", "Google"}}}))
	}
	var m metadata
	host, err := get("/computeMetadata/v1/instance/hostname")
	if err != nil {
		logf("gce: no hostname: %v", err)
	}
	m.Hostname = shortHostname(string(host))
	if m.UserData, err = get("/computeMetadata/v1/instance/attributes/user-data"); err != nil {
		return nil, err
	}
	return &m, nil
}

// azureComputePath is Azure IMDS's compute section, in the API version
// that has userData.
const azureComputePath = "/metadata/instance/compute?api-version=2021-02-01"

// azure asks Azure's instance metadata service.
func (c metadataClient) azure(ctx context.Context) (*metadata, error) {
	b, err := fetch(ctx, c.Metadata, httpRequest{Method: "GET", Path: azureComputePath, Host: metadataHost,
		Header: [][2]string{{"Metadata", "true"}}})
	if err != nil {
		return nil, err
	}
	return parseAzureCompute(b)
}

// parseAzureCompute reads the name and the (base64) userData of IMDS's
// compute JSON; other fields are ignored.
func parseAzureCompute(b []byte) (*metadata, error) {
	var c struct {
		Name     string `json:"name"`
		UserData string `json:"userData"`
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("Azure IMDS compute metadata: %w", err)
	}
	m := &metadata{Hostname: shortHostname(c.Name)}
	if c.UserData != "" {
		ud, err := base64.StdEncoding.DecodeString(strings.TrimSpace(c.UserData))
		if err != nil {
			return nil, fmt.Errorf("Azure IMDS userData is not base64: %w", err)
		}
		if len(ud) > guestapi.MaxUserData {
			return nil, fmt.Errorf("Azure IMDS userData of %d bytes: more than %d", len(ud), guestapi.MaxUserData)
		}
		m.UserData = ud
	}
	return m, nil
}

// shortHostname is the first label of a platform's (often fully
// qualified) hostname, or "" when it is not a valid hostname label:
// sethostname takes 64 bytes, a label at most 63.
func shortHostname(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), ".")
	if s == "" || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return ""
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-') {
			return ""
		}
	}
	return s
}
