package auth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/kopernik-io/kopernik/broker"
)

func sign(t *testing.T, method jwt.SigningMethod, key any, claims jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(method, claims).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestTokenVerifierHS256(t *testing.T) {
	v, err := NewSecretVerifier([]byte("0123456789abcdef0123456789abcdef"))
	if err != nil {
		t.Fatal(err)
	}
	good := sign(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), jwt.MapClaims{"sub": "alice"})
	if p, err := v.Verify(good); err != nil || p.Role != "alice" {
		t.Fatalf("good token: %+v %v", p, err)
	}
	future := sign(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), jwt.MapClaims{"sub": "bob", "exp": time.Now().Add(time.Hour).Unix()})
	if p, err := v.Verify(future); err != nil || p.Role != "bob" {
		t.Fatalf("unexpired token: %+v %v", p, err)
	}
	for name, tok := range map[string]string{
		"expired":   sign(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(-time.Minute).Unix()}),
		"other key": sign(t, jwt.SigningMethodHS256, []byte("another secret, another secret!!"), jwt.MapClaims{"sub": "alice"}),
		"no sub":    sign(t, jwt.SigningMethodHS256, []byte("0123456789abcdef0123456789abcdef"), jwt.MapClaims{"x": 1}),
		"none alg":  sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, jwt.MapClaims{"sub": "alice"}),
		"garbage":   "not.a.token",
	} {
		_, err := v.Verify(tok)
		if !errors.Is(err, ErrAuthentication) {
			t.Errorf("%s: %v, want ErrAuthentication", name, err)
		}
		if expired := PublicReason(err) == "token expired"; expired != (name == "expired") {
			t.Errorf("%s: public reason %q", name, PublicReason(err))
		}
	}
}

func TestTokenVerifierRS256(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	for _, enc := range [][]byte{der, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})} {
		v, err := NewPublicKeyVerifier(enc)
		if err != nil {
			t.Fatal(err)
		}
		if p, err := v.Verify(sign(t, jwt.SigningMethodRS256, key, jwt.MapClaims{"sub": "svc"})); err != nil || p.Role != "svc" {
			t.Fatalf("%+v %v", p, err)
		}
		// An HS256 token "signed" with the public key bytes must not pass.
		if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, enc, jwt.MapClaims{"sub": "svc"})); err == nil {
			t.Fatal("algorithm confusion accepted")
		}
	}
}

// memState is a broker.StateStore in memory.
type memState map[string][]byte

func (m memState) GetState(_ context.Context, kind, key string) ([]byte, error) {
	v, ok := m[kind+"/"+key]
	if !ok {
		return nil, broker.ErrStateNotFound
	}
	return v, nil
}
func (m memState) PutState(_ context.Context, kind, key string, v []byte) error {
	m[kind+"/"+key] = v
	return nil
}
func (m memState) DeleteState(_ context.Context, kind, key string) error {
	delete(m, kind+"/"+key)
	return nil
}
func (m memState) ListState(context.Context, string) ([]string, error) { return nil, nil }

func TestSCRAMRejectsMalformed(t *testing.T) {
	st := NewSCRAMStore(memState{})
	for _, msg := range []string{"", "n,,", "p=tls-unique,,n=a,r=x", "n,,n=a", "x,,n=a,r=b", "n,,n=a=5,r=b"} {
		x, _ := st.NewSCRAMServer(SCRAMSHA256)
		if _, _, _, err := x.Step(context.Background(), []byte(msg)); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%q: %v", msg, err)
		}
	}
	if _, err := st.NewSCRAMServer("SCRAM-MD5"); err == nil {
		t.Error("unknown mechanism accepted")
	}
}

// scramExchange runs franz-go's SCRAM client against a SCRAMServer.
func scramExchange(t *testing.T, st *SCRAMStore, mech sasl.Mechanism, name string) (Principal, error) {
	t.Helper()
	ctx := context.Background()
	sess, msg, err := mech.Authenticate(ctx, "127.0.0.1:9092")
	if err != nil {
		t.Fatal(err)
	}
	x, err := st.NewSCRAMServer(name)
	if err != nil {
		t.Fatal(err)
	}
	for {
		resp, done, p, err := x.Step(ctx, msg)
		if err != nil {
			return p, err
		}
		cdone, next, cerr := sess.Challenge(resp)
		if cerr != nil {
			t.Fatalf("client refused the server's answer: %v", cerr)
		}
		if done {
			if !cdone {
				t.Fatal("server done before the client")
			}
			return p, nil
		}
		msg = next
	}
}

func TestSCRAMWithFranzClient(t *testing.T) {
	st := NewSCRAMStore(memState{})
	ctx := context.Background()
	for _, mech := range []string{SCRAMSHA256, SCRAMSHA512} {
		c, err := NewSCRAMCredential(mech, "pass,word=", DefaultSCRAMIterations)
		if err != nil {
			t.Fatal(err)
		}
		c.Tenant, c.Namespace = "acme", "apps"
		if err := st.Put(ctx, "us=er,1", c); err != nil {
			t.Fatal(err)
		}
	}
	a := scram.Auth{User: "us=er,1", Pass: "pass,word="}
	for mech, m := range map[string]sasl.Mechanism{SCRAMSHA256: a.AsSha256Mechanism(), SCRAMSHA512: a.AsSha512Mechanism()} {
		p, err := scramExchange(t, st, m, mech)
		if err != nil || p != (Principal{Role: "us=er,1", Tenant: "acme", Namespace: "apps"}) {
			t.Fatalf("%s: %+v %v", mech, p, err)
		}
		bad := scram.Auth{User: "us=er,1", Pass: "wrong"}
		wrong := map[string]sasl.Mechanism{SCRAMSHA256: bad.AsSha256Mechanism(), SCRAMSHA512: bad.AsSha512Mechanism()}[mech]
		if _, err := scramExchange(t, st, wrong, mech); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("%s wrong password: %v", mech, err)
		}
		ghost := scram.Auth{User: "ghost", Pass: "x"}.AsSha256Mechanism()
		if _, err := scramExchange(t, st, ghost, SCRAMSHA256); !errors.Is(err, ErrAuthentication) {
			t.Fatalf("unknown user: %v", err)
		}
	}
	if err := st.Delete(ctx, "us=er,1", ""); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, SCRAMSHA256, "us=er,1"); !errors.Is(err, ErrUnknownUser) {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := NewSCRAMCredential(SCRAMSHA256, "pw", 100); err == nil {
		t.Fatal("100 iterations accepted")
	}
}

func TestFailedDelaysAndIsBounded(t *testing.T) {
	a := New(nil, nil, "", 100*time.Millisecond, nil)
	start := time.Now()
	a.Failed(context.Background(), "test", "1.2.3.4:5", "PLAIN", ErrAuthentication)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Fatalf("failure answered after %s, want the delay", d)
	}
	// A closing connection does not wait the delay out.
	a.FailureDelay = time.Hour
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	a.Failed(ctx, "test", "1.2.3.4:5", "PLAIN", ErrAuthentication)
	// With every slot taken, failures are refused at once.
	for range maxPendingFailures {
		a.pending <- struct{}{}
	}
	start = time.Now()
	a.Failed(context.Background(), "test", "1.2.3.4:5", "PLAIN", ErrAuthentication)
	if time.Since(start) > time.Second {
		t.Fatal("a failure beyond the bound was delayed")
	}
	if _, err := a.AuthenticateToken("x"); !errors.Is(err, ErrAuthentication) {
		t.Fatalf("token without a verifier: %v", err)
	}
}

func TestAdmitBoundsPendingPerAddress(t *testing.T) {
	a := New(nil, nil, "", 0, nil)
	a.MaxPendingPerAddress = 2
	r1, ok1 := a.Admit("10.0.0.1:1000")
	_, ok2 := a.Admit("10.0.0.1:1001")
	if _, ok := a.Admit("10.0.0.1:1002"); !ok1 || !ok2 || ok {
		t.Fatalf("third pending connection from one address admitted (%v %v %v)", ok1, ok2, ok)
	}
	if _, ok := a.Admit("10.0.0.2:1000"); !ok {
		t.Fatal("another address refused")
	}
	r1()
	r1() // idempotent
	if _, ok := a.Admit("10.0.0.1:1003"); !ok {
		t.Fatal("not admitted after a release")
	}
	if _, ok := a.Admit("10.0.0.1:1004"); ok {
		t.Fatal("a double release freed two slots")
	}
}
