package cli

import (
	"runtime/debug"
	"strings"
)

// Version describes the binary: module version, VCS commit and time when
// the build recorded them (go build and go install in a git checkout do;
// go run and test binaries do not), and the Go version.
func Version() string {
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "kopernik (devel)"
	}
	return versionOf(bi)
}

func versionOf(bi *debug.BuildInfo) string {
	parts := []string{"kopernik", bi.Main.Version}
	if bi.Main.Version == "" {
		parts[1] = "(devel)"
	}
	var rev, at string
	modified := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			at = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev != "" {
		c := "commit " + rev
		if modified {
			c += " (modified)"
		}
		if at != "" {
			c += " " + at
		}
		parts = append(parts, c)
	}
	parts = append(parts, bi.GoVersion)
	return strings.Join(parts, " ")
}
