package guest

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"strings"
)

// NoCloud: cloud-init's configuration disk, which KubeVirt
// (cloudInitNoCloud), cloud-localds and genisoimage make: a filesystem
// labelled cidata, ISO 9660 or FAT, holding user-data and meta-data.

// cidataLabel is the volume label that marks a NoCloud disk, compared
// without case (ISO 9660 volume ids are often upper case).
const cidataLabel = "cidata"

// Where the labels are (ECMA-119 8.4; Microsoft's FAT specification).
const (
	isoPVDOffset  = 0x8000 // the primary volume descriptor: sector 16 of 2048 bytes
	isoVolIDStart = 40
	isoVolIDLen   = 32
	fatLabelLen   = 11
	superblockLen = isoPVDOffset + 2048 // enough of a device for both
)

// fsLabel reads the start of a device and returns its filesystem's
// label and the type to mount it with ("iso9660" or "vfat"), or "" and
// "" for anything else. It trusts nothing it reads: short devices and
// garbage are not labels.
func fsLabel(r io.ReaderAt) (label, fsType string) {
	buf := make([]byte, superblockLen)
	n, _ := r.ReadAt(buf, 0)
	buf = buf[:n]
	if l, ok := isoLabel(buf); ok {
		return l, "iso9660"
	}
	if l, ok := fatLabel(buf); ok {
		return l, "vfat"
	}
	return "", ""
}

// isoLabel is the volume id of an ISO 9660 primary volume descriptor:
// type 1, "CD001", version 1.
func isoLabel(b []byte) (string, bool) {
	if len(b) < isoPVDOffset+isoVolIDStart+isoVolIDLen {
		return "", false
	}
	d := b[isoPVDOffset:]
	if d[0] != 1 || string(d[1:6]) != "CD001" || d[6] != 1 {
		return "", false
	}
	return cleanLabel(d[isoVolIDStart : isoVolIDStart+isoVolIDLen]), true
}

// fatLabel is the volume label in a FAT boot sector's extended BIOS
// parameter block: at 43 for FAT12/16, at 71 for FAT32 (whose 16-bit
// sectors-per-FAT count is 0), present when the extended boot signature
// (0x29) is.
func fatLabel(b []byte) (string, bool) {
	if len(b) < 512 || b[510] != 0x55 || b[511] != 0xAA {
		return "", false
	}
	bps := binary.LittleEndian.Uint16(b[11:])
	if bps < 512 || bps > 4096 || bps&(bps-1) != 0 || b[13] == 0 || b[16] == 0 { // sector size, sectors per cluster, FATs
		return "", false
	}
	sig, label := 38, 43
	if binary.LittleEndian.Uint16(b[22:]) == 0 {
		sig, label = 66, 71
	}
	if b[sig] != 0x29 {
		return "", false
	}
	return cleanLabel(b[label : label+fatLabelLen]), true
}

// cleanLabel trims a fixed-size label's padding (spaces, NULs) and
// refuses what is not printable ASCII.
func cleanLabel(b []byte) string {
	b = bytes.TrimRight(b, " \x00")
	for _, c := range b {
		if c < ' ' || c >= 0x7f {
			return ""
		}
	}
	return string(b)
}

// isCidata reports whether label marks a NoCloud disk.
func isCidata(label string) bool { return strings.EqualFold(label, cidataLabel) }

// noCloudMeta is what nos-init reads of NoCloud's meta-data.
type noCloudMeta struct {
	InstanceID    string `json:"instance-id"`
	LocalHostname string `json:"local-hostname"`
}

// maxMetaData bounds the meta-data read.
const maxMetaData = 64 << 10

// parseMetaData reads meta-data's instance-id and local-hostname. The
// file is YAML; KubeVirt and cloud-localds write it as plain "key: value"
// lines or as a JSON object (which YAML also is), and both are read.
// Anything else (nested maps, lists, other keys) is skipped: meta-data
// is not nos's format, and a guest runs without it.
func parseMetaData(b []byte) noCloudMeta {
	var m noCloudMeta
	if len(b) > maxMetaData {
		return m
	}
	if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
		var raw map[string]any
		if json.Unmarshal(t, &raw) == nil {
			m.InstanceID, _ = raw["instance-id"].(string)
			m.LocalHostname, _ = raw["local-hostname"].(string)
		}
		return m
	}
	for _, line := range strings.Split(string(b), "\n") {
		line = strings.TrimRight(line, "\r")
		if line == "" || line[0] == ' ' || line[0] == '\t' || line[0] == '#' {
			continue // blank, nested or a comment
		}
		key, value, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		switch strings.TrimSpace(key) {
		case "instance-id":
			m.InstanceID = yamlScalar(value)
		case "local-hostname":
			m.LocalHostname = yamlScalar(value)
		}
	}
	return m
}

// yamlScalar is a one-line YAML scalar: trimmed, a trailing comment
// dropped, quotes removed.
func yamlScalar(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= 2 && (s[0] == '"' || s[0] == '\'') {
		if end := strings.IndexByte(s[1:], s[0]); end >= 0 {
			return s[1 : 1+end]
		}
		return ""
	}
	if i := strings.Index(s, " #"); i >= 0 {
		s = strings.TrimSpace(s[:i])
	}
	return s
}
