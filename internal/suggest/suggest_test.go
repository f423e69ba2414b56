package suggest

import "testing"

func TestClosest(t *testing.T) {
	known := []string{"fsync", "fsync-interval", "ledger-cache-bytes", "topics"}
	for _, c := range []struct {
		name string
		max  int
		want string
	}{
		{"fsnyc", 2, "fsync"},
		{"ledger-cache", 2, "ledger-cache-bytes"},
		{"fsync-intervall", 2, "fsync-interval"},
		{"topic", 2, "topics"},
		{"bogus", 2, ""},
		{"x", 2, ""},
		{"ledger-cache-byte", 0, "ledger-cache-bytes"},
	} {
		if got := Closest(c.name, known, c.max); got != c.want {
			t.Errorf("Closest(%q, %d) = %q, want %q", c.name, c.max, got, c.want)
		}
	}
}

func TestDistance(t *testing.T) {
	for _, c := range []struct {
		a, b string
		want int
	}{{"", "", 0}, {"abc", "", 3}, {"", "ab", 2}, {"kitten", "sitting", 3}, {"flaw", "lawn", 2}} {
		if got := Distance(c.a, c.b); got != c.want {
			t.Errorf("Distance(%q, %q) = %d, want %d", c.a, c.b, got, c.want)
		}
	}
}
