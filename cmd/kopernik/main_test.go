package main

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "kopernik-bin")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "kopernik")
	if out, err := exec.Command("go", "build", "-o", binary, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func TestInvalidSettingsListEveryProblem(t *testing.T) {
	cmd := exec.Command(binary, "standalone", "--data-dir", t.TempDir(), "--fsync", "sometimes", "--http-addr", "nowhere")
	cmd.Env = append(os.Environ(), "KOPERNIK_NO_SUCH_SETTING=1")
	out, err := cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Fatalf("want exit 2, got %v\n%s", err, out)
	}
	for _, want := range []string{"fsync", "http-addr", "KOPERNIK_NO_SUCH_SETTING"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("output does not mention %s:\n%s", want, out)
		}
	}
}

// startProcess runs `kopernik standalone` on port-0 listeners and returns
// the addresses it logged.
func startProcess(t *testing.T, dataDir string) (*exec.Cmd, map[string]string) {
	t.Helper()
	return startProcessEnv(t, dataDir, nil)
}

// startProcessEnv is startProcess with settings in the environment
// (KOPERNIK_SEGMENT_BYTES=..., ...).
func startProcessEnv(t *testing.T, dataDir string, env []string) (*exec.Cmd, map[string]string) {
	t.Helper()
	cmd, addrs, _, _ := startProcessOutput(t, dataDir, env)
	return cmd, addrs
}

// startProcessOutput is startProcessEnv that also returns the process's
// stdout (written as it runs) and its log lines up to "kopernik started".
func startProcessOutput(t *testing.T, dataDir string, env []string) (*exec.Cmd, map[string]string, *syncBuffer, []string) {
	t.Helper()
	cmd := exec.Command(binary, "standalone", "--data-dir", dataDir,
		"--kafka-addr", "127.0.0.1:0", "--pulsar-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0")
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	stdout := new(syncBuffer)
	cmd.Stdout = stdout
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	addrs := map[string]string{}
	var logs []string
	re := regexp.MustCompile(`msg=listening protocol=(\w+) addr=(\S+)`)
	sc := bufio.NewScanner(stderr)
	deadline := time.AfterFunc(20*time.Second, func() { cmd.Process.Kill() })
	defer deadline.Stop()
	for sc.Scan() {
		line := sc.Text()
		logs = append(logs, line)
		if m := re.FindStringSubmatch(line); m != nil {
			addrs[m[1]] = m[2]
		}
		if strings.Contains(line, "kopernik started") {
			break
		}
	}
	go io.Copy(io.Discard, stderr)
	if addrs["http"] == "" {
		t.Fatalf("no http address logged: %v", addrs)
	}
	return cmd, addrs, stdout, logs
}

func TestStandaloneStartsAndStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	cmd, addrs := startProcess(t, dir)
	for _, p := range []string{"kafka", "pulsar", "http"} {
		if addrs[p] == "" || strings.HasSuffix(addrs[p], ":0") {
			t.Errorf("%s address not logged with its real port: %q", p, addrs[p])
		}
	}
	resp, err := http.Get("http://" + addrs["http"] + "/admin/v2/brokers/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok" {
		t.Fatalf("health %d %q", resp.StatusCode, body)
	}
	start := time.Now()
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
		t.Logf("stopped in %v", time.Since(start))
	case <-time.After(15 * time.Second):
		t.Fatal("no exit within 15s of SIGTERM")
	}
}

// TestCommandLine: the binary's command line is package cli's, with the
// broker's own commands in it, against a broker process.
func TestCommandLine(t *testing.T) {
	exit := func(args ...string) (string, int) {
		out, err := exec.Command(binary, args...).CombinedOutput()
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), 0
	}
	if out, code := exit("help"); code != 0 || !strings.Contains(out, "standalone") || !strings.Contains(out, "verify") || !strings.Contains(out, "topics") {
		t.Fatalf("help: %d\n%s", code, out)
	}
	if out, code := exit("standalone", "-h"); code != 0 || !strings.Contains(out, "-data-dir") {
		t.Fatalf("standalone -h: %d\n%s", code, out)
	}
	if _, code := exit(); code != 2 {
		t.Fatalf("no command: exit %d", code)
	}
	if out, code := exit("--version"); code != 0 || !strings.HasPrefix(out, "kopernik ") {
		t.Fatalf("--version: %d %q", code, out)
	}
	_, addrs := startProcess(t, t.TempDir())
	global := []string{"--url", "http://" + addrs["http"], "--kafka", addrs["kafka"]}
	if out, code := exit(append(global, "topics", "create", "cli-t", "-p", "2")...); code != 0 {
		t.Fatalf("topics create: %d\n%s", code, out)
	}
	if out, code := exit(append(global, "topics", "list")...); code != 0 || !strings.Contains(out, "persistent://public/default/cli-t  2") {
		t.Fatalf("topics list: %d\n%s", code, out)
	}
	if out, code := exit(append(global, "topics", "describe", "nope")...); code != 1 || !strings.Contains(out, "not found") {
		t.Fatalf("describe unknown: %d\n%s", code, out)
	}
}
