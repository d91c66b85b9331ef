package volume

import "syscall"

type syscallStat struct{ bytes int64 }

// statBlocks reads the space a file takes (its allocated blocks).
func statBlocks(path string, st *syscallStat) error {
	var s syscall.Stat_t
	if err := syscall.Stat(path, &s); err != nil {
		return err
	}
	st.bytes = s.Blocks * 512
	return nil
}
