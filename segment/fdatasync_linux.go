package segment

import (
	"os"
	"syscall"
)

// fdatasync flushes data and the metadata needed to read it back (file size),
// skipping timestamps: cheaper than fsync for append-only logs.
func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			if err != nil {
				return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
			}
			return nil
		}
	}
}
