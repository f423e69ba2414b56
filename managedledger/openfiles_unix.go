//go:build unix

package managedledger

import "syscall"

// defaultMaxOpenFiles is three quarters of the soft RLIMIT_NOFILE (which Go
// raised to the hard limit at start), leaving the rest to sockets and
// everything else; at least 64. Unbounded (0) if the limit is unknown or
// unlimited.
func defaultMaxOpenFiles() int {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur == 0 || lim.Cur > 1<<30 {
		return 0
	}
	return max(int(lim.Cur/4*3), 64)
}
