package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/kopernik-io/kopernik/verify"
)

var (
	verifyCycles   = flag.Int("verify.cycles", 6, "TestVerifyUnderKills: SIGKILL/restart cycles")
	verifyInterval = flag.Duration("verify.interval", 3*time.Second, "TestVerifyUnderKills: mean time between kills")
	verifyRate     = flag.Int("verify.rate", 3000, "TestVerifyUnderKills: records/s over all producers (0: unlimited)")
	verifyValue    = flag.Int("verify.value-bytes", 2048, "TestVerifyUnderKills: values carry up to this many filler bytes")
)

// proxy forwards a fixed 127.0.0.1 port to whatever address the current
// broker process listens on, so clients (and the broker's advertised
// addresses) survive restarts on fresh port-0 listeners. A connection
// whose backend dies is closed on both sides.
type proxy struct {
	ln net.Listener
	mu struct {
		sync.Mutex
		target string
	}
}

func newProxy(t *testing.T) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) setTarget(addr string) {
	p.mu.Lock()
	p.mu.target = addr
	p.mu.Unlock()
}

func (p *proxy) serve(c net.Conn) {
	defer c.Close()
	p.mu.Lock()
	target := p.mu.target
	p.mu.Unlock()
	b, err := net.DialTimeout("tcp", target, time.Second)
	if err != nil {
		return
	}
	defer b.Close()
	done := make(chan struct{}, 2)
	go func() { io.Copy(b, c); done <- struct{}{} }()
	go func() { io.Copy(c, b); done <- struct{}{} }()
	<-done
}

// TestVerifyUnderKills runs the verify workload (Kafka and Pulsar producers
// and consumers on one topic) against the real binary while SIGKILLing and
// restarting it every few seconds, with 2 MiB ledgers so that reads and
// recovery cross ledger boundaries, then checks the history: nothing
// acknowledged lost, no duplicates (idempotent Kafka producers and
// deduplicated Pulsar producers keep retrying across restarts), one value per
// offset, no skipped or backward reads. Long run: -verify.cycles=100.
func TestVerifyUnderKills(t *testing.T) {
	if testing.Short() {
		t.Skip("process crash test")
	}
	dir := t.TempDir()
	kp, pp := newProxy(t), newProxy(t)
	env := []string{"KOPERNIK_SEGMENT_BYTES=2097152",
		"KOPERNIK_KAFKA_ADVERTISED_ADDR=" + kp.addr(), "KOPERNIK_PULSAR_ADVERTISED_ADDR=" + pp.addr()}
	var cmd *exec.Cmd
	start := func() {
		var addrs map[string]string
		cmd, addrs = startProcessEnv(t, dir, env)
		kp.setTarget(addrs["kafka"])
		pp.setTarget(addrs["pulsar"])
	}
	start()

	begin := time.Now()
	cycles := 0
	killerDone := make(chan struct{})
	stopKiller := make(chan struct{})
	go func() {
		defer close(killerDone)
		for cycles < *verifyCycles {
			d := *verifyInterval/2 + rand.N(*verifyInterval)
			select {
			case <-stopKiller:
				return
			case <-time.After(d):
			}
			cmd.Process.Kill()
			cmd.Wait()
			cycles++
			start()
		}
	}()
	defer func() {
		select {
		case <-killerDone:
		default:
			close(stopKiller)
			<-killerDone
		}
	}()

	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*verifyCycles)**verifyInterval*3+3*time.Minute)
	defer cancel()
	var logs bytes.Buffer
	var logMu sync.Mutex
	h, err := verify.Run(ctx, verify.Config{
		KafkaAddr: kp.addr(), PulsarAddr: pp.addr(), Topic: "verify", Partitions: 3,
		Duration: time.Duration(*verifyCycles)**verifyInterval + *verifyInterval/2,
		Rate:     *verifyRate, ValueBytes: *verifyValue, KafkaProducers: 2, PulsarProducers: 1, Consumers: 1,
		BeforeFinal: func(ctx context.Context) error {
			select {
			case <-killerDone:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		},
		Log: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &logMu}, nil)),
	})
	logMu.Lock()
	t.Logf("workload log:\n%s", logs.String())
	logMu.Unlock()
	if h == nil {
		t.Fatal(err)
	}
	if err != nil {
		t.Errorf("workload: %v", err)
	}
	r := verify.Check(h, verify.Options{Examples: 10})
	r.Extra = map[string]string{"cycles": fmt.Sprint(cycles), "duration": time.Since(begin).Round(time.Millisecond).String()}
	var text bytes.Buffer
	r.WriteText(&text)
	t.Logf("report:\n%s", text.String())
	if cycles < *verifyCycles {
		t.Errorf("%d kill cycles, want %d", cycles, *verifyCycles)
	}
	if r.Acked == 0 || r.FinalRead == 0 {
		t.Errorf("nothing acknowledged or read back: %+v", r)
	}
	if !r.Valid {
		t.Errorf("anomalies found under kills")
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestVerifyCommand runs `kopernik verify --json` against a live process:
// exit 0 and a valid report with everything acknowledged read back.
func TestVerifyCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("process test")
	}
	_, addrs := startProcess(t, t.TempDir())
	out, err := exec.Command(binary, "verify", "--kafka", addrs["kafka"], "--pulsar", addrs["pulsar"],
		"--http", addrs["http"], "--topic", "cmd", "--duration", "2s", "--rate", "500", "--json").Output()
	if err != nil {
		t.Fatalf("verify: %v\n%s", err, out)
	}
	var r verify.Report
	if err := json.Unmarshal(out, &r); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !r.Valid || r.Acked == 0 || r.FinalRead != r.Acked {
		t.Fatalf("report: %s", out)
	}
	if code := run([]string{"verify", "--no-such-flag"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("bad flag: exit %d, want 2", code)
	}
}
