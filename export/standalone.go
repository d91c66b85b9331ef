package export

import (
	"context"

	"github.com/nosproject/nos/guestapi"
)

// WriteStandaloneInitrd writes dst (which must not exist): the image's
// initramfs base followed by a small archive holding cfg at
// guestapi.StandaloneConfig, as every export boots it. It is how an
// exporter, or a test booting an image by hand, gives the guest its
// config without a nos host.
func WriteStandaloneInitrd(ctx context.Context, dst, base string, cfg *guestapi.Config) error {
	return writeInitrd(ctx, dst, base, cfg)
}
