//go:build !unix

package logfile

import "os"

// linkCount is not available on this platform; Follow then treats a
// rotated file it cannot find as not yet found rather than removed.
func linkCount(os.FileInfo) (uint64, error) {
	return 0, errNoLinkCount
}
