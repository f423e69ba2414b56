package kafka

import (
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCompatibilityTable: docs/compatibility.md's Kafka API tables list
// exactly the APIs and version ranges the registry serves (and ApiVersions
// advertises).
func TestCompatibilityTable(t *testing.T) {
	raw, err := os.ReadFile("../../docs/compatibility.md")
	if err != nil {
		t.Fatal(err)
	}
	kafka, _, _ := strings.Cut(string(raw), "\n## Pulsar")
	row := regexp.MustCompile(`^\| (\d+) \| \w+ \| (\d+)(?:-(\d+))? \|`)
	documented := map[int16][2]int16{}
	for _, line := range strings.Split(kafka, "\n") {
		m := row.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		key, _ := strconv.Atoi(m[1])
		lo, _ := strconv.Atoi(m[2])
		hi := lo
		if m[3] != "" {
			hi, _ = strconv.Atoi(m[3])
		}
		documented[int16(key)] = [2]int16{int16(lo), int16(hi)}
	}
	for key, a := range apis {
		if d, ok := documented[key]; !ok || d != [2]int16{a.min, a.max} {
			t.Errorf("key %d: served %d-%d, documented %v (present %v)", key, a.min, a.max, d, ok)
		}
	}
	for key := range documented {
		if _, ok := apis[key]; !ok {
			t.Errorf("key %d documented but not served", key)
		}
	}
}
