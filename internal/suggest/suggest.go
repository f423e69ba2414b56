// Package suggest finds the known name a mistyped one was meant to be, for
// "did you mean" hints in command-line and configuration errors.
package suggest

import "strings"

// Closest returns the known name that name is a prefix of (when name has
// at least two characters), else the nearest one within maxEdits
// insertions, deletions or substitutions (Levenshtein distance), else "".
// Ties go to the first in known.
func Closest(name string, known []string, maxEdits int) string {
	best, bestD := "", maxEdits+1
	for _, k := range known {
		if len(name) >= 2 && strings.HasPrefix(k, name) {
			return k
		}
		if d := Distance(name, k); d < bestD {
			best, bestD = k, d
		}
	}
	return best
}

// Distance is the Levenshtein distance between a and b, in bytes.
func Distance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
