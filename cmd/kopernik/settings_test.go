package main

import (
	"bytes"
	"net"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
)

// run runs the binary to completion and returns its output and exit code.
func runBinary(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return o.String(), e.String(), ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), 0
}

// TestStandaloneHelp: -h goes to stdout, grouped by section, with the
// settings that used to exist only in YAML.
func TestStandaloneHelp(t *testing.T) {
	out, _, code := runBinary(t, "standalone", "-h")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	order := []string{"--config <file>", "\nGeneral:\n", "--data-dir <path>", "\nStorage:\n", "--ledger-cache-bytes <size>",
		"\nAuthentication and authorization", "--auth-enabled[=bool]", "\nKafka protocol:\n", "--kafka-addr <host:port>",
		"--kafka-advertised-addr <host:port>", "\nPulsar protocol:\n", "--pulsar-keepalive <duration>"}
	pos := 0
	for _, want := range order {
		i := strings.Index(out[pos:], want)
		if i < 0 {
			t.Fatalf("%q missing or out of order in:\n%s", want, out)
		}
		pos += i
	}
	if !strings.Contains(out, "default: 64MiB; env KOPERNIK_LEDGER_CACHE_BYTES; Pulsar managedLedgerCacheSizeMB") {
		t.Errorf("ledger-cache-bytes notes missing:\n%s", out)
	}
}

// TestStandaloneBadFlags: typed flags refuse bad values by name and
// value; an unknown flag gets the closest setting.
func TestStandaloneBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want []string
	}{
		{[]string{"--fsync-interval", "soon"}, []string{`invalid value "soon" for flag -fsync-interval: "soon" is not a duration`}},
		{[]string{"--auth-enabled=maybe"}, []string{`-auth-enabled`, `"maybe" is not a boolean`}},
		{[]string{"--ledger-cache", "1MiB"}, []string{"flag provided but not defined: -ledger-cache", "did you mean --ledger-cache-bytes?"}},
		{[]string{"data"}, []string{"unexpected arguments [data]"}},
		{[]string{"--auth-enabled", "false"}, []string{"unexpected arguments [false]", "--auth-enabled=false"}},
	} {
		_, errOut, code := runBinary(t, append([]string{"standalone"}, c.args...)...)
		if code != 2 {
			t.Errorf("%v: exit %d\n%s", c.args, code, errOut)
		}
		for _, w := range c.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: %q missing from:\n%s", c.args, w, errOut)
			}
		}
		if strings.Contains(errOut, "\nGeneral:") {
			t.Errorf("%v: the whole help printed on a bad flag:\n%s", c.args, errOut)
		}
	}
}

// syncBuffer is a bytes.Buffer written by exec's copying goroutine and
// read by the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestStartupSaysWhereToConnect: after start the process prints the Kafka
// bootstrap, Pulsar service URL, admin and console URLs once, with the
// real ports; each listener is logged once.
func TestStartupSaysWhereToConnect(t *testing.T) {
	cmd, _, stdout, logs := startProcessOutput(t, t.TempDir(), nil)
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	all := strings.Join(logs, "\n")
	addr := map[string]string{}
	for _, p := range []string{"kafka", "pulsar", "http"} {
		re := regexp.MustCompile(`msg=listening protocol=` + p + ` addr=(\S+)`)
		m := re.FindAllStringSubmatch(all, -1)
		if len(m) != 1 {
			t.Fatalf("%s listener logged %d times:\n%s", p, len(m), all)
		}
		addr[p] = m[0][1]
	}
	out := stdout.String()
	for _, want := range []string{
		"Kafka bootstrap:     " + addr["kafka"] + "\n",
		"Pulsar service URL:  pulsar://" + addr["pulsar"] + "\n",
		"Admin URL:           http://" + addr["http"] + "/admin/v2\n",
		"Console:             http://" + addr["http"] + "/\n",
	} {
		if strings.Count(out, want) != 1 {
			t.Errorf("want %q once in stdout:\n%s", want, out)
		}
	}
	if strings.Count(out, "Kafka bootstrap:") != 1 {
		t.Errorf("printed more than once:\n%s", out)
	}
}

// TestFailedStartNamesTheFlag: a port in use fails the start with the
// step, the cause and the flag to change, and no "stopped" line.
func TestFailedStartNamesTheFlag(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, c := range []struct {
		flag string
		args []string
	}{
		{"--kafka-addr", []string{"--kafka-addr", taken, "--pulsar-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0"}},
		{"--http-addr", []string{"--kafka-addr", "127.0.0.1:0", "--pulsar-addr", "127.0.0.1:0", "--http-addr", taken}},
	} {
		stdout, errOut, code := runBinary(t, append([]string{"standalone", "--data-dir", t.TempDir()}, c.args...)...)
		if code != 1 {
			t.Fatalf("%s: exit %d\n%s", c.flag, code, errOut)
		}
		for _, want := range []string{`msg="start failed"`, "address already in use", "on " + taken, "choose a free port with " + c.flag} {
			if !strings.Contains(errOut, want) {
				t.Errorf("%s: %q missing from:\n%s", c.flag, want, errOut)
			}
		}
		if strings.Contains(errOut, "stopped") || strings.Contains(stdout, "Connect to") {
			t.Errorf("%s: a failed start reads as a stop or a start:\n%s%s", c.flag, stdout, errOut)
		}
	}
}
