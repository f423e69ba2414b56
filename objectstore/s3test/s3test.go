// Package s3test starts a real S3-compatible server (versitygw, POSIX
// backend) for tests: on 127.0.0.1, a free port and its own temp dir, with
// one bucket, stopped by the test's cleanup.
//
// The binary is built once, outside the module, by .ci/run (or by hand):
//
//	GOBIN=${KOPERNIK_TOOLS:-$HOME/.cache/kopernik/bin} go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// and found through $KOPERNIK_VERSITYGW (a path), else in $KOPERNIK_TOOLS,
// else in $HOME/.cache/kopernik/bin. Without it a test skips with that
// command in the message, except under CI=true, where it fails: CI must
// never pass without having run the tiered-storage tests.
package s3test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"
)

// BuildCommand builds the server binary into the cache dir.
const BuildCommand = "GOBIN=${KOPERNIK_TOOLS:-$HOME/.cache/kopernik/bin} go install github.com/versity/versitygw/cmd/versitygw@v1.8.0"

// Credentials of the server's root user (test-only values).
const (
	AccessKey = "kopernik-test"
	SecretKey = "kopernik-test-secret"
	Region    = "us-east-1"
)

// Server is one running versitygw.
type Server struct {
	// Endpoint is the server's URL, http://127.0.0.1:port.
	Endpoint string
	// Bucket exists when Start returns.
	Bucket string
	// Root is the POSIX backend's directory (a bucket is a subdirectory).
	Root string

	bin  string
	addr string
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of the versitygw binary, or an error naming the
// command that builds it.
func Binary() (string, error) {
	if p := os.Getenv("KOPERNIK_VERSITYGW"); p != "" {
		if _, err := os.Stat(p); err != nil {
			return "", fmt.Errorf("s3test: KOPERNIK_VERSITYGW=%s: %w", p, err)
		}
		return p, nil
	}
	dir := os.Getenv("KOPERNIK_TOOLS")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("s3test: no home directory to find the cache in: %w", err)
		}
		dir = filepath.Join(home, ".cache", "kopernik", "bin")
	}
	p := filepath.Join(dir, "versitygw")
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("s3test: no S3 server binary at %s; build it with: %s", p, BuildCommand)
	}
	return p, nil
}

// Start starts a server with one bucket and registers its stop with
// t.Cleanup. Without the binary it skips t (fails it under CI=true).
func Start(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%v (CI=true: the tiered-storage tests must run)", err)
		}
		t.Skip(err)
	}
	root := t.TempDir()
	s := &Server{Root: root, Bucket: "kopernik", bin: bin}
	// The bucket is a directory of the POSIX backend; creating it before
	// the start needs no S3 client here.
	if err := os.Mkdir(filepath.Join(root, s.Bucket), 0o755); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for attempt := 0; attempt < 5; attempt++ {
		port, err := freePort()
		if err != nil {
			t.Fatal(err)
		}
		s.addr = "127.0.0.1:" + strconv.Itoa(port)
		s.Endpoint = "http://" + s.addr
		if lastErr = s.Restart(); lastErr == nil {
			t.Cleanup(s.Stop)
			return s
		}
	}
	t.Fatalf("s3test: starting %s: %v", bin, lastErr)
	return nil
}

// freePort asks the kernel for a free loopback port. versitygw cannot
// report a port it picked itself, so there is a short window in which
// another process may take it: Start retries with another port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// Restart starts the server again on the same address and directory
// (after Stop: a fault test's store coming back). It returns once the
// server answers HTTP.
func (s *Server) Restart() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil {
		return fmt.Errorf("s3test: already running")
	}
	cmd := exec.Command(s.bin, "--access", AccessKey, "--secret", SecretKey, "--region", Region,
		"--port", s.addr, "--quiet", "--keep-alive", "posix", s.Root)
	cmd.Stdout = nil
	logf, err := os.CreateTemp("", "versitygw-*.log")
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for {
		resp, err := http.Get(s.Endpoint + "/")
		if err == nil {
			resp.Body.Close()
			s.cmd, s.done = cmd, done
			os.Remove(logf.Name())
			return nil
		}
		select {
		case <-done:
			out, _ := os.ReadFile(logf.Name())
			os.Remove(logf.Name())
			return fmt.Errorf("s3test: server exited: %s", out)
		case <-ctx.Done():
			cmd.Process.Kill()
			<-done
			os.Remove(logf.Name())
			return fmt.Errorf("s3test: server did not answer on %s", s.addr)
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// Stop stops the server (SIGKILL: the fault tests want a store that is
// gone, not one that says goodbye) and waits for it. Idempotent.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}
