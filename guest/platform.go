package guest

import (
	"os"
	"path/filepath"
	"strings"
)

// platform is the cloud a standalone guest runs on, as its firmware's
// DMI tables tell: the init then knows which metadata service to ask,
// without waiting on addresses that answer nowhere else.
type platform string

const (
	platformNone  platform = "none"
	platformAWS   platform = "aws"
	platformGCE   platform = "gce"
	platformAzure platform = "azure"
)

// dmiDir is where the kernel shows the DMI tables (CONFIG_DMI, CONFIG_DMIID).
const dmiDir = "/sys/class/dmi/id"

// azureAssetTag is the chassis asset tag of every Azure VM.
const azureAssetTag = "7783-7084-3265-9085-8269-3286-77"

// detectPlatform reads the DMI fields in dir (sys_vendor, product_name,
// chassis_asset_tag, bios_vendor, bios_version, board_vendor) and names
// the platform they describe: AWS's Nitro instances say "Amazon EC2",
// its Xen ones have an Amazon BIOS; GCE says Google; Azure has its asset
// tag (Hyper-V elsewhere also says Microsoft Corporation, so the vendor
// alone is not enough). Anything else, or no DMI at all, is none.
func detectPlatform(dir string) platform {
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || len(b) > 256 {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	vendor, product := read("sys_vendor"), read("product_name")
	switch {
	case vendor == "Amazon EC2" || read("board_vendor") == "Amazon EC2" ||
		containsFold(read("bios_version"), "amazon") || containsFold(read("bios_vendor"), "amazon"):
		return platformAWS
	case vendor == "Google" || product == "Google Compute Engine":
		return platformGCE
	case read("chassis_asset_tag") == azureAssetTag:
		return platformAzure
	}
	return platformNone
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}
