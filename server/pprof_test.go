package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestDebugPprof: the runtime profiles are served only with debug-pprof,
// and then a heap profile of the live broker can be read.
func TestDebugPprof(t *testing.T) {
	for _, on := range []bool{false, true} {
		var settings []string
		if on {
			settings = []string{"debug-pprof", "true"}
		}
		s := startStorageServer(t, t.TempDir(), nil, settings...)
		resp, err := http.Get("http://" + s.Addr("http").String() + "/debug/pprof/heap?debug=1")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if on && (resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "heap profile")) {
			t.Fatalf("debug-pprof on: %d %.200q", resp.StatusCode, body)
		}
		if !on && resp.StatusCode == http.StatusOK && strings.Contains(string(body), "heap profile") {
			t.Fatalf("debug-pprof off: heap profile served")
		}
		s.Close(context.Background())
	}
}
