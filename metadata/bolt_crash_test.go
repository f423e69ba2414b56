package metadata

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// crashWriterEnv makes the test binary act as the writer process of
// TestBoltCrashKeepsAcknowledgedWrites.
const crashWriterEnv = "KOPERNIK_BOLT_CRASH_WRITER"

// TestBoltCrashKeepsAcknowledgedWrites runs writers in a child process,
// kills it with SIGKILL mid-stream, and checks that every Put the child saw
// acknowledged is in the file afterwards (at that version or later), and
// that the file opens cleanly. A process kill proves that Put acknowledges
// only committed writes; it cannot prove the fsync (that takes a power cut:
// the page cache survives SIGKILL).
func TestBoltCrashKeepsAcknowledgedWrites(t *testing.T) {
	if path := os.Getenv(crashWriterEnv); path != "" {
		crashWriter(path)
		return
	}
	if testing.Short() {
		t.Skip("crash test re-executes the test binary")
	}
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestBoltCrashKeepsAcknowledgedWrites$")
	cmd.Env = append(os.Environ(), crashWriterEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	acked := map[string]int64{}
	sc := bufio.NewScanner(out)
	killAfter := 300
	for sc.Scan() {
		key, v, ok := strings.Cut(sc.Text(), " ")
		if !ok {
			continue
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			continue
		}
		acked[key] = max(acked[key], n)
		if killAfter--; killAfter == 0 {
			cmd.Process.Kill()
			break
		}
	}
	cmd.Wait()
	if killAfter > 0 {
		t.Fatalf("writer stopped early after %d acknowledgements", 300-killAfter)
	}

	s, err := OpenBolt(path)
	if err != nil {
		t.Fatalf("reopen after crash: %v", err)
	}
	defer s.Close()
	for key, v := range acked {
		r, err := s.Get(ctx(), key)
		if err != nil {
			t.Fatalf("acknowledged %s@%d lost: %v", key, v, err)
		}
		if r.Version < v {
			t.Fatalf("acknowledged %s@%d, found version %d", key, v, r.Version)
		}
	}
}

// crashWriter writes until killed, printing "key version" after each
// acknowledged Put.
func crashWriter(path string) {
	s, err := OpenBolt(path, WithBoltTimeout(10*time.Second))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var mu sync.Mutex
	w := bufio.NewWriter(os.Stdout)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := 0; ; i++ {
				key := fmt.Sprintf("/crash/g%d/k%d", g, i%8)
				v, err := s.Put(ctx(), key, []byte(strings.Repeat("x", 100)), AnyVersion)
				if err != nil {
					fmt.Fprintln(os.Stderr, err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintf(w, "%s %d\n", key, v)
				w.Flush()
				mu.Unlock()
			}
		})
	}
	wg.Wait()
}
