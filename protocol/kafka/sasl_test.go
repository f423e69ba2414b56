package kafka

import (
	"bytes"
	"context"
	"net"
	"testing"

	"github.com/kopernik-io/kopernik/auth"
)

// FuzzSASL feeds arbitrary SaslAuthenticate payloads to each mechanism:
// nothing may panic, and garbage never authenticates. Seeds are real
// client messages (PLAIN, SCRAM client-first and client-final shapes).
//
//	go test ./protocol/kafka -run '^$' -fuzz FuzzSASL -fuzztime 60s
func FuzzSASL(f *testing.F) {
	s := startServer(f)
	verifier, err := auth.NewSecretVerifier([]byte("fuzz-secret-0123456789abcdef0123"))
	if err != nil {
		f.Fatal(err)
	}
	scram := auth.NewSCRAMStore(s.broker)
	cred, _ := auth.NewSCRAMCredential(auth.SCRAMSHA256, "pw", auth.DefaultSCRAMIterations)
	scram.Put(context.Background(), "user", cred)
	s.h.auth = auth.New(verifier, scram, "", 0, testLogger())

	f.Add(uint8(0), []byte("\x00public\x00token:eyJhbGciOiJIUzI1NiJ9.e30.x"), []byte{})
	f.Add(uint8(1), []byte("n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL"), []byte("c=biws,r=fyko+d2lbbFgONRv9qkxdawLxyz,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	f.Add(uint8(2), []byte("n,a=user,n=user,r=abc"), []byte("c=biwsYT11c2VyLA==,r=abc,p="))
	f.Add(uint8(1), []byte("y,,n=us=2Cer,r=a,e=ext"), []byte(",p=,p=,"))
	f.Fuzz(func(t *testing.T, mech uint8, first, second []byte) {
		a, b := net.Pipe()
		defer a.Close()
		defer b.Close()
		c := &conn{h: s.h, nc: a, log: testLogger(), stop: make(chan struct{})}
		c.sasl = newSASLState(c)
		defer c.sasl.stop()
		c.sasl.mechanism = saslMechanisms[int(mech)%len(saslMechanisms)]
		ctx := context.Background()
		for _, msg := range [][]byte{first, second} {
			if _, err := c.sasl.authenticate(ctx, msg); err != nil {
				return
			}
			if c.sasl.done.Load() {
				break
			}
		}
		if c.sasl.done.Load() && !bytes.Contains(first, []byte("token:")) {
			t.Fatalf("authenticated from garbage: %q %q as %+v", first, second, c.sasl.principal)
		}
	})
}
