package metadata

import (
	"fmt"
	"strings"
)

// ValidatePath checks the path rules of the Store contract.
func ValidatePath(p string) error {
	if p == "/" {
		return nil
	}
	if !strings.HasPrefix(p, "/") || strings.HasSuffix(p, "/") {
		return fmt.Errorf("%w: %q", ErrInvalidPath, p)
	}
	for _, seg := range strings.Split(p[1:], "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("%w: %q", ErrInvalidPath, p)
		}
	}
	return nil
}

// Join builds a path from segments; segments must not contain '/'.
func Join(segments ...string) string {
	return "/" + strings.Join(segments, "/")
}

// under reports whether p is prefix itself or below it.
func under(p, prefix string) bool {
	if prefix == "/" || p == prefix {
		return true
	}
	return strings.HasPrefix(p, prefix+"/")
}
