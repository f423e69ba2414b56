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
		if _, err := v.Verify(tok); !errors.Is(err, ErrAuthentication) {
			t.Errorf("%s: %v, want ErrAuthentication", name, err)
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
