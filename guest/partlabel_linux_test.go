package guest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPartitionByLabel(t *testing.T) {
	sys := t.TempDir()
	for name, uevent := range map[string]string{
		"nvme0n1":   "MAJOR=259\nMINOR=0\nDEVNAME=nvme0n1\nDEVTYPE=disk\n",
		"nvme0n1p1": "MAJOR=259\nMINOR=1\nDEVNAME=nvme0n1p1\nDEVTYPE=partition\nPARTN=1\nPARTNAME=EFI System\n",
		"nvme0n1p2": "MAJOR=259\nMINOR=2\nDEVNAME=nvme0n1p2\nDEVTYPE=partition\nPARTN=2\nPARTNAME=nos-root\n",
		"sda1":      "MAJOR=8\nMINOR=1\nDEVTYPE=partition\nPARTNAME=other\n",
	} {
		os.Mkdir(filepath.Join(sys, name), 0o755)
		os.WriteFile(filepath.Join(sys, name, "uevent"), []byte(uevent), 0o644)
	}
	if got, ok := partitionByLabel(sys, "nos-root"); !ok || got != "nvme0n1p2" {
		t.Errorf("nos-root: %q, %v", got, ok)
	}
	if got, ok := partitionByLabel(sys, "other"); !ok || got != "sda1" {
		t.Errorf("no DEVNAME: %q, %v (want the directory's name)", got, ok)
	}
	if _, ok := partitionByLabel(sys, "nos-ro"); ok {
		t.Error("a prefix matched")
	}
	if _, ok := partitionByLabel(sys, ""); ok {
		t.Error("an empty label matched a disk")
	}
}
