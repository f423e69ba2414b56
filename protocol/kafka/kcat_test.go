package kafka

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestKcat runs librdkafka through kcat (apt-get install kcat); skipped
// when kcat is not on PATH.
func TestKcat(t *testing.T) {
	kcat, err := exec.LookPath("kcat")
	if err != nil {
		t.Skip("kcat not on PATH")
	}
	s := startServer(t)
	run := func(stdin string, args ...string) string {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, kcat, append([]string{"-b", s.addr}, args...)...)
		cmd.Stdin = strings.NewReader(stdin)
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("kcat %v: %v\n%s", args, err, stderr.String())
		}
		return string(out)
	}
	var in strings.Builder
	for i := range 10 {
		fmt.Fprintf(&in, "k%d:v%d\n", i, i)
	}
	for _, codec := range []string{"none", "gzip", "snappy", "lz4", "zstd"} {
		topic := "kcat-" + codec
		run(in.String(), "-P", "-t", topic, "-K", ":", "-z", codec, "-X", "enable.idempotence=true")
		out := run("", "-C", "-t", topic, "-o", "beginning", "-e", "-f", "%o %k %s\n")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 10 || lines[0] != "0 k0 v0" || lines[9] != "9 k9 v9" {
			t.Fatalf("%s: consumed:\n%s", codec, out)
		}
	}
	// Metadata listing.
	if out := run("", "-L", "-t", "kcat-zstd"); !strings.Contains(out, `topic "kcat-zstd" with 1 partitions`) {
		t.Fatalf("metadata:\n%s", out)
	}
}
