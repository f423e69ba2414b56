package server

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestStartErrorsSayHowToFix: the first failing step is reported with the
// flag that fixes it.
func TestStartErrorsSayHowToFix(t *testing.T) {
	s := startServer(t, nil)
	start := func(o map[string]string) *StartError {
		t.Helper()
		cfg, err := Load("", nil, bothProtocols(t, o))
		if err != nil {
			t.Fatal(err)
		}
		srv, err := Start(context.Background(), cfg, nil)
		if err == nil {
			srv.Close(context.Background())
			t.Fatalf("%v: started", o)
		}
		var se *StartError
		if !errors.As(err, &se) {
			t.Fatalf("%v: %v is not a StartError", o, err)
		}
		return se
	}
	for _, c := range []struct {
		o    map[string]string
		step string
		fix  string
	}{
		{map[string]string{"kafka-addr": s.Addr("kafka").String()}, "kafka listener on " + s.Addr("kafka").String(), "choose a free port with --kafka-addr or KOPERNIK_KAFKA_ADDR"},
		{map[string]string{"pulsar-addr": s.Addr("pulsar").String()}, "pulsar listener on", "--pulsar-addr"},
		{map[string]string{"http-addr": s.Addr("http").String()}, "http listener on", "--http-addr"},
		{map[string]string{"data-dir": s.cfg.DataDir}, "data dir " + s.cfg.DataDir, "another kopernik uses this directory"},
		{map[string]string{"kafka-tls-addr": "127.0.0.1:0", "tls-cert-file": filepath.Join(t.TempDir(), "none.pem"), "tls-key-file": "none.key"}, "TLS", "--tls-cert-file"},
	} {
		se := start(c.o)
		if !strings.HasPrefix(se.Step, c.step) || !strings.Contains(se.Fix, c.fix) {
			t.Errorf("%v: step %q fix %q; want %q, %q", c.o, se.Step, se.Fix, c.step, c.fix)
		}
	}
	e := s.Endpoints()
	if e.KafkaBootstrap != s.Addr("kafka").String() || e.PulsarURL != "pulsar://"+s.Addr("pulsar").String() ||
		e.AdminURL != "http://"+s.Addr("http").String()+"/admin/v2" || e.ConsoleURL != "http://"+s.Addr("http").String()+"/" {
		t.Errorf("endpoints %+v", e)
	}
}
