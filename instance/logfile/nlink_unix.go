//go:build unix

package logfile

import (
	"os"
	"syscall"
)

// linkCount returns the number of directory entries of the file fi
// describes.
func linkCount(fi os.FileInfo) (uint64, error) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, errNoLinkCount
	}
	return uint64(st.Nlink), nil
}
