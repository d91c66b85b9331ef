package guest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestDetectPlatform(t *testing.T) {
	for _, tc := range []struct {
		name   string
		fields map[string]string
		want   platform
	}{
		{"no dmi", nil, platformNone},
		{"qemu", map[string]string{"sys_vendor": "QEMU\n", "product_name": "Standard PC (Q35 + ICH9, 2009)\n", "bios_vendor": "SeaBIOS\n"}, platformNone},
		{"aws nitro", map[string]string{"sys_vendor": "Amazon EC2\n", "product_name": "m5.large\n"}, platformAWS},
		{"aws xen", map[string]string{"sys_vendor": "Xen\n", "bios_version": "4.11.amazon\n", "bios_vendor": "Xen\n"}, platformAWS},
		{"aws metal", map[string]string{"sys_vendor": "Intel\n", "board_vendor": "Amazon EC2\n"}, platformAWS},
		{"gce", map[string]string{"sys_vendor": "Google\n", "product_name": "Google Compute Engine\n"}, platformGCE},
		{"gce product only", map[string]string{"product_name": "Google Compute Engine"}, platformGCE},
		{"azure", map[string]string{"sys_vendor": "Microsoft Corporation\n", "product_name": "Virtual Machine\n", "chassis_asset_tag": azureAssetTag + "\n"}, platformAzure},
		{"hyper-v elsewhere", map[string]string{"sys_vendor": "Microsoft Corporation\n", "product_name": "Virtual Machine\n", "chassis_asset_tag": "None\n"}, platformNone},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for k, v := range tc.fields {
				if err := os.WriteFile(filepath.Join(dir, k), []byte(v), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if got := detectPlatform(dir); got != tc.want {
				t.Errorf("got %s, want %s", got, tc.want)
			}
		})
	}
	if got := detectPlatform(filepath.Join(t.TempDir(), "missing")); got != platformNone {
		t.Errorf("missing directory: %s", got)
	}
}
