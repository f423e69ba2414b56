package server

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadPrecedenceAndSections(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(file, []byte(`
data-dir: /from/file
fsync: interval
fsync-interval: 250ms
line-addr: 127.0.0.1:7000
line:
  greeting: from-file
retention-time: 1h
`), 0o644)
	env := []string{"KOPERNIK_DATA_DIR=/from/env", "KOPERNIK_LINE_GREETING=from-env", "PATH=/bin"}
	cfg, err := Load(file, env, map[string]string{"data-dir": "/from/flag", "protocols": "line"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/from/flag" {
		t.Errorf("data-dir %q: flags beat env and file", cfg.DataDir)
	}
	if cfg.Fsync != "interval" || cfg.FsyncInterval != 250*time.Millisecond || cfg.RetentionTime != time.Hour {
		t.Errorf("file settings lost: %+v", cfg)
	}
	if cfg.Addrs["line"] != "127.0.0.1:7000" {
		t.Errorf("line-addr %q", cfg.Addrs["line"])
	}
	if g := cfg.Handlers["line"].(*lineConfig).Greeting; g != "from-env" {
		t.Errorf("section from env: %q", g)
	}
	if cfg.HTTPAddr != "localhost:8080" || cfg.MaxMessageBytes != 1<<20 {
		t.Errorf("defaults lost: %+v", cfg)
	}
}

func TestLoadReportsEveryProblem(t *testing.T) {
	file := filepath.Join(t.TempDir(), "k.yaml")
	os.WriteFile(file, []byte("bogus: 1\nfsync: sometimes\nline:\n  greting: x\n"), 0o644)
	_, err := Load(file, []string{"KOPERNIK_NOPE=1"}, map[string]string{"http-addr": "nocolon", "protocols": "line,smoke-signals"})
	if err == nil {
		t.Fatal("want error")
	}
	for _, want := range []string{`"bogus"`, "greting", `KOPERNIK_NOPE`, "http-addr", "smoke-signals", "fsync must be"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
}

func TestAuthorizationNeedsSuperUsers(t *testing.T) {
	_, err := Load("", nil, map[string]string{"auth-enabled": "true"})
	if err == nil || !strings.Contains(err.Error(), "superuser-roles") {
		t.Fatalf("auth-enabled without superuser-roles: %v", err)
	}
	for _, o := range []map[string]string{
		{"auth-enabled": "true", "superuser-roles": "admin"},
		{"auth-enabled": "true", "authorization-enabled": "false"},
		{"superuser-roles": ""},
	} {
		if _, err := Load("", nil, o); err != nil {
			t.Errorf("%v: %v", o, err)
		}
	}
}

func TestMetadataStoreURLSetting(t *testing.T) {
	cfg, err := Load("", []string{"KOPERNIK_METADATA_STORE_URL=etcd:http://127.0.0.1:2379"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MetadataStoreURL != "etcd:http://127.0.0.1:2379" {
		t.Fatalf("metadata-store-url from env: %q", cfg.MetadataStoreURL)
	}
	_, err = Load("", nil, map[string]string{"metadata-store-url": "zk:127.0.0.1:2181"})
	if err == nil || !strings.Contains(err.Error(), "metadata-store-url") || !strings.Contains(err.Error(), "unknown store") {
		t.Fatalf("bad metadata-store-url: %v", err)
	}
}
