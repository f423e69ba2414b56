package managedledger

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

const crashEnv = "KOPERNIK_ML_CRASH_DIR"

// crashPayload is the content of the entry with sequence number seq.
func crashPayload(seq int64) []byte {
	n := 64 + int(uint64(seq)*7919%4000)
	b := bytes.Repeat([]byte{byte(seq)}, n)
	copy(b, strconv.FormatInt(seq, 10))
	return b
}

func crashFactory(t testing.TB, dir string) (*Factory, *fileStore) {
	store := openFileStore(t, filepath.Join(dir, "meta.json"))
	f, err := NewFactory(FactoryOptions{
		Dir: filepath.Join(dir, "data"), Store: store, Logger: quietLogger(), RetentionInterval: -1,
		Prealloc: 256 << 10, // exercise zero-filled tails
	})
	if err != nil {
		t.Fatal(err)
	}
	return f, store
}

var crashCfg = Config{MaxLedgerBytes: 2 << 20, Sync: SyncAlways}

// TestCrashRecovery runs a child process (this test binary) that appends
// with SyncAlways from several goroutines and prints every acknowledged
// entry; the parent SIGKILLs it at random moments, reopens the directory
// and checks that every acknowledged entry is there exactly once, in order,
// with its content, and that appends continue with the next index.
func TestCrashRecovery(t *testing.T) {
	if dir := os.Getenv(crashEnv); dir != "" {
		crashChild(t, dir)
		return
	}
	if testing.Short() {
		t.Skip("spawns processes")
	}
	dir := t.TempDir()
	acked := map[int64]int64{} // seq -> first index
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for round := 0; round < 5; round++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestCrashRecovery$", "-test.count=1")
		cmd.Env = append(os.Environ(), crashEnv+"="+dir, "KOPERNIK_ML_CRASH_ROUND="+strconv.Itoa(round))
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(out)
		killAfter := time.Duration(100+rng.IntN(500)) * time.Millisecond
		var timer *time.Timer
		n := 0
		for sc.Scan() {
			f := strings.Fields(sc.Text())
			if len(f) != 3 || f[0] != "ack" {
				continue // the last line may be torn by the kill
			}
			seq, err1 := strconv.ParseInt(f[1], 10, 64)
			idx, err2 := strconv.ParseInt(f[2], 10, 64)
			if err1 != nil || err2 != nil {
				continue
			}
			acked[seq] = idx
			n++
			if timer == nil {
				timer = time.AfterFunc(killAfter, func() { cmd.Process.Signal(syscall.SIGKILL) })
			}
		}
		cmd.Wait()
		if timer == nil {
			t.Fatalf("round %d: child acknowledged nothing", round)
		}
		t.Logf("round %d: killed after %v, %d acks in this round", round, killAfter, n)
		verifyCrashDir(t, dir, acked, false)
	}
	verifyCrashDir(t, dir, acked, true)
}

// verifyCrashDir reopens dir and checks the acknowledged entries.
func verifyCrashDir(t *testing.T, dir string, acked map[int64]int64, appendAfter bool) {
	t.Helper()
	f, _ := crashFactory(t, dir)
	defer f.Close()
	ml, err := f.Open(context.Background(), "crash/t", crashCfg)
	if err != nil {
		t.Fatal(err)
	}
	all := readAll(t, ml)
	seen := make(map[int64]int64, len(all))
	next := int64(0)
	for _, e := range all {
		if e.FirstIndex != next {
			t.Fatalf("index gap: entry %v starts at %d, want %d", e.Position, e.FirstIndex, next)
		}
		next = e.LastIndex() + 1
		if _, dup := seen[e.SeqFirst]; dup {
			t.Fatalf("seq %d stored twice", e.SeqFirst)
		}
		seen[e.SeqFirst] = e.FirstIndex
		if !bytes.Equal(e.Data, crashPayload(e.SeqFirst)) {
			t.Fatalf("entry %v (seq %d): wrong content", e.Position, e.SeqFirst)
		}
	}
	for seq, idx := range acked {
		got, ok := seen[seq]
		if !ok {
			t.Fatalf("acknowledged seq %d (index %d) lost; %d entries stored", seq, idx, len(all))
		}
		if got != idx {
			t.Fatalf("acknowledged seq %d at index %d, stored at %d", seq, idx, got)
		}
	}
	if ml.NextIndex() != next {
		t.Fatalf("next index %d, entries end at %d", ml.NextIndex(), next)
	}
	t.Logf("%d entries stored, %d acknowledged, %d ledgers, %d entries replayed from the journal", len(all), len(acked), len(ml.Stats().Ledgers), f.replayed.Load())
	if appendAfter {
		e, err := ml.Append(context.Background(), Entry{MsgCount: 1, SeqFirst: -1, Data: crashPayload(-1)})
		if err != nil || e.FirstIndex != next {
			t.Fatalf("append after recovery: %+v %v, want index %d", e, err, next)
		}
	}
}

func crashChild(t *testing.T, dir string) {
	round, _ := strconv.ParseInt(os.Getenv("KOPERNIK_ML_CRASH_ROUND"), 10, 64)
	f, _ := crashFactory(t, dir)
	ml, err := f.Open(context.Background(), "crash/t", crashCfg)
	if err != nil {
		t.Fatal(err)
	}
	var outMu sync.Mutex
	var wg sync.WaitGroup
	deadline := time.Now().Add(10 * time.Second) // the parent kills long before
	for g := int64(0); g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := int64(0); time.Now().Before(deadline); i++ {
				seq := round<<40 | g<<32 | i
				e, err := ml.Append(context.Background(), Entry{
					Format: FormatKafka, MsgCount: int32(1 + i%5), SeqFirst: seq, Data: crashPayload(seq),
				})
				if err != nil {
					fmt.Fprintln(os.Stderr, "append:", err)
					return
				}
				// One write(2) per line straight to the pipe: acknowledged means printed.
				outMu.Lock()
				fmt.Fprintf(os.Stdout, "ack %d %d\n", seq, e.FirstIndex)
				outMu.Unlock()
			}
		}()
	}
	wg.Wait()
	f.Close()
}
