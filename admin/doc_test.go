package admin

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// TestAdminAPIDoc: docs/admin-api.md's tables list exactly the routes the
// admin API serves (Routes), so the reference cannot go stale.
func TestAdminAPIDoc(t *testing.T) {
	raw, err := os.ReadFile("../docs/admin-api.md")
	if err != nil {
		t.Fatal(err)
	}
	route := regexp.MustCompile("^\\| `((?:GET|PUT|POST|DELETE) /[^`]*)`")
	var documented []string
	for _, line := range strings.Split(string(raw), "\n") {
		if m := route.FindStringSubmatch(line); m != nil {
			documented = append(documented, m[1])
		}
	}
	served := Routes()
	for _, r := range served {
		if !slices.Contains(documented, r) {
			t.Errorf("served but not in docs/admin-api.md: %s", r)
		}
	}
	for _, r := range documented {
		if !slices.Contains(served, r) {
			t.Errorf("in docs/admin-api.md but not served: %s", r)
		}
	}
	if len(documented) == 0 {
		t.Fatal("no routes found in docs/admin-api.md")
	}
}
