package guest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nosproject/nos/guestapi"
)

// How long a standalone guest spends asking its platform before it runs
// the application as built, and how long Azure's ready report may take
// in the background.
const (
	metadataBudget = 30 * time.Second
	azureBudget    = 3 * time.Minute
)

// configureStandalone is what a guest no nos host manages does once its
// network is up: it finds the platform from DMI, reads a NoCloud disk
// when one is attached, else asks the platform's metadata service, and
// changes cfg as the user-data says (guestapi.UserData), the platform's
// hostname coming before the image's and after the user-data's. On
// Azure it also reports the VM ready, in the background. Nothing here
// stops the application from running: every failure is logged on the
// console, where a cloud shows it.
func configureStandalone(cfg *guestapi.Config) {
	p := detectPlatform(dmiDir)
	logf("platform: %s (from %s)", p, dmiDir)
	if p == platformAzure {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), azureBudget)
			defer cancel()
			g, err := defaultMetadataClient.azureReportReady(ctx)
			if err != nil {
				logf("azure: reporting ready to the wire server: %v", err)
				return
			}
			logf("azure: reported ready (incarnation %s, container %s, instance %s)", g.Incarnation, g.ContainerID, g.InstanceID)
		}()
	}

	var (
		hostname, source string
		userData         []byte
	)
	nc, err := readNoCloud()
	switch {
	case err != nil:
		logf("nocloud: %v", err)
	case nc != nil:
		logf("nocloud: %s (instance-id %q, local-hostname %q)", nc.Device, nc.Meta.InstanceID, nc.Meta.LocalHostname)
		hostname, userData, source = shortHostname(nc.Meta.LocalHostname), nc.UserData, "the NoCloud disk"
	}
	if nc == nil && p != platformNone {
		ctx, cancel := context.WithTimeout(context.Background(), metadataBudget)
		m, err := defaultMetadataClient.forPlatform(ctx, p)
		cancel()
		if err != nil {
			logf("%s: metadata: %v", p, err)
		} else {
			logf("%s: metadata: hostname %q, %d bytes of user-data", p, m.Hostname, len(m.UserData))
			hostname, userData, source = m.Hostname, m.UserData, string(p)+" metadata"
		}
	}
	if hostname != "" {
		cfg.Hostname = hostname
	}
	applyUserData(cfg, userData, source)
}

// forPlatform asks p's metadata service.
func (c metadataClient) forPlatform(ctx context.Context, p platform) (*metadata, error) {
	switch p {
	case platformAWS:
		return c.aws(ctx)
	case platformGCE:
		return c.gce(ctx)
	case platformAzure:
		return c.azure(ctx)
	}
	return nil, fmt.Errorf("platform %s has no metadata service", p)
}

// applyUserData changes cfg as nos user-data b says. User-data that is
// not nos's (#cloud-config, a script) is logged and ignored, as is nos
// user-data with an error: the application then runs as built. Refusing
// to run would leave a cloud VM up but serving nothing, whose user-data
// can often be changed only by stopping it, with the reason in a console
// log few look at first; running as built keeps the service up, and the
// console says loudly what was wrong.
func applyUserData(cfg *guestapi.Config, b []byte, source string) {
	if len(bytes.TrimSpace(b)) == 0 {
		if source != "" {
			logf("user-data: none in %s", source)
		}
		return
	}
	u, err := guestapi.ParseUserData(b)
	switch {
	case errors.Is(err, guestapi.ErrNotNosUserData):
		first, _, _ := strings.Cut(string(b), "\n")
		logf("user-data from %s is not nos's (it begins %q): ignored", source, truncate([]byte(first)))
		return
	case err != nil:
		logf("ERROR: user-data from %s is ignored, the application runs as built: %v", source, err)
		return
	}
	u.Apply(cfg)
	if len(cfg.Hostname) > 64 { // sethostname's limit; user-data allows a longer FQDN
		cfg.Hostname, _, _ = strings.Cut(cfg.Hostname, ".")
	}
	logf("user-data from %s applied: %s", source, describeUserData(u))
}

// describeUserData says what user-data changes, without the values of
// environment variables, which may be secrets.
func describeUserData(u *guestapi.UserData) string {
	var parts []string
	if len(u.Env) > 0 {
		names := make([]string, len(u.Env))
		for i, e := range u.Env {
			names[i], _, _ = strings.Cut(e, "=")
		}
		parts = append(parts, "env "+strings.Join(names, ","))
	}
	if u.Args != nil {
		parts = append(parts, fmt.Sprintf("%d args", len(*u.Args)))
	}
	if u.Hostname != "" {
		parts = append(parts, "hostname "+u.Hostname)
	}
	if len(parts) == 0 {
		return "no change"
	}
	return strings.Join(parts, ", ")
}
