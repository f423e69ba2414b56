//go:build !unix

package managedledger

// defaultMaxOpenFiles: no descriptor limit is known here; unbounded.
func defaultMaxOpenFiles() int { return 0 }
