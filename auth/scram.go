package auth

import (
	"context"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"strconv"
	"strings"

	"github.com/kopernik-io/kopernik/broker"
)

// SCRAM mechanisms (RFC 7677 and its SHA-512 sibling), named as in Kafka.
const (
	SCRAMSHA256 = "SCRAM-SHA-256"
	SCRAMSHA512 = "SCRAM-SHA-512"
)

// DefaultSCRAMIterations is the PBKDF2 iteration count of new credentials
// (Kafka's default and minimum for SCRAM, 4096).
const DefaultSCRAMIterations = 4096

func scramHash(mechanism string) (func() hash.Hash, error) {
	switch mechanism {
	case SCRAMSHA256:
		return sha256.New, nil
	case SCRAMSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("auth: unknown SCRAM mechanism %q (want %s or %s)", mechanism, SCRAMSHA256, SCRAMSHA512)
}

// SCRAMCredential is what the broker keeps of a SCRAM password: the salt,
// the iteration count and the derived StoredKey and ServerKey (RFC 5802
// section 3), never the password.
type SCRAMCredential struct {
	Mechanism  string `json:"mechanism"`
	Salt       []byte `json:"salt"`
	Iterations int    `json:"iterations"`
	StoredKey  []byte `json:"storedKey"`
	ServerKey  []byte `json:"serverKey"`
	// Tenant and Namespace are where the user's short topic names resolve
	// (empty: the handler's defaults).
	Tenant    string `json:"tenant,omitempty"`
	Namespace string `json:"namespace,omitempty"`
}

// NewSCRAMCredential salts and derives the keys of password.
func NewSCRAMCredential(mechanism, password string, iterations int) (SCRAMCredential, error) {
	h, err := scramHash(mechanism)
	if err != nil {
		return SCRAMCredential{}, err
	}
	if iterations < DefaultSCRAMIterations {
		return SCRAMCredential{}, fmt.Errorf("auth: SCRAM iterations %d: want >= %d", iterations, DefaultSCRAMIterations)
	}
	if password == "" {
		return SCRAMCredential{}, errors.New("auth: empty SCRAM password")
	}
	salt := make([]byte, 24)
	rand.Read(salt)
	salted, err := pbkdf2.Key(h, password, salt, iterations, h().Size())
	if err != nil {
		return SCRAMCredential{}, fmt.Errorf("auth: %w", err)
	}
	return saltedCredential(h, mechanism, salt, salted, iterations), nil
}

// NewSCRAMCredentialSalted derives a credential from a client-computed
// salted password (Kafka AlterUserScramCredentials, KIP-554: clients send
// Hi(password, salt, iterations), never the password).
func NewSCRAMCredentialSalted(mechanism string, salt, saltedPassword []byte, iterations int) (SCRAMCredential, error) {
	h, err := scramHash(mechanism)
	if err != nil {
		return SCRAMCredential{}, err
	}
	if iterations < DefaultSCRAMIterations {
		return SCRAMCredential{}, fmt.Errorf("auth: SCRAM iterations %d: want >= %d", iterations, DefaultSCRAMIterations)
	}
	if len(salt) == 0 || len(saltedPassword) != h().Size() {
		return SCRAMCredential{}, fmt.Errorf("auth: SCRAM salted password of %d bytes with a salt of %d: want %d and a salt", len(saltedPassword), len(salt), h().Size())
	}
	return saltedCredential(h, mechanism, salt, saltedPassword, iterations), nil
}

func saltedCredential(h func() hash.Hash, mechanism string, salt, salted []byte, iterations int) SCRAMCredential {
	clientKey := hmacSum(h, salted, []byte("Client Key"))
	stored := h()
	stored.Write(clientKey)
	return SCRAMCredential{Mechanism: mechanism, Salt: salt, Iterations: iterations,
		StoredKey: stored.Sum(nil), ServerKey: hmacSum(h, salted, []byte("Server Key"))}
}

func hmacSum(h func() hash.Hash, key, msg []byte) []byte {
	m := hmac.New(h, key)
	m.Write(msg)
	return m.Sum(nil)
}

// scramKind is the broker.StateStore kind of SCRAM credentials; the key is
// "<mechanism>:<user>".
const scramKind = "auth-scram"

// SCRAMStore keeps SCRAM credentials in the broker's state store, so they
// survive restarts and move with the metadata.
type SCRAMStore struct {
	st broker.StateStore
	// fakeSecret derives the answers given for unknown users, so that a
	// client cannot tell a missing user from a wrong password.
	fakeSecret []byte
}

// NewSCRAMStore returns a store over st.
func NewSCRAMStore(st broker.StateStore) *SCRAMStore {
	s := &SCRAMStore{st: st, fakeSecret: make([]byte, 32)}
	rand.Read(s.fakeSecret)
	return s
}

// ErrUnknownUser is Get's error for a user without a credential for the mechanism.
var ErrUnknownUser = errors.New("auth: unknown SCRAM user")

// Put stores user's credential for c.Mechanism, replacing any.
func (s *SCRAMStore) Put(ctx context.Context, user string, c SCRAMCredential) error {
	if user == "" {
		return errors.New("auth: empty SCRAM user name")
	}
	b, err := json.Marshal(c)
	if err != nil {
		return err
	}
	return s.st.PutState(ctx, scramKind, c.Mechanism+":"+user, b)
}

// Get returns user's credential for mechanism.
func (s *SCRAMStore) Get(ctx context.Context, mechanism, user string) (SCRAMCredential, error) {
	var c SCRAMCredential
	b, err := s.st.GetState(ctx, scramKind, mechanism+":"+user)
	if errors.Is(err, broker.ErrStateNotFound) {
		return c, fmt.Errorf("%w: %s (%s)", ErrUnknownUser, user, mechanism)
	}
	if err != nil {
		return c, err
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("auth: SCRAM credential of %s: %w", user, err)
	}
	return c, nil
}

// Delete removes user's credential for mechanism, or for both when
// mechanism is empty. Removing a missing credential is not an error.
func (s *SCRAMStore) Delete(ctx context.Context, user, mechanism string) error {
	mechs := []string{mechanism}
	if mechanism == "" {
		mechs = []string{SCRAMSHA256, SCRAMSHA512}
	}
	for _, m := range mechs {
		if err := s.st.DeleteState(ctx, scramKind, m+":"+user); err != nil {
			return err
		}
	}
	return nil
}

// Users lists "mechanism:user" entries.
func (s *SCRAMStore) Users(ctx context.Context) ([]string, error) {
	return s.st.ListState(ctx, scramKind)
}

// SCRAMServer is the server side of one SCRAM exchange (RFC 5802):
// client-first -> server-first, client-final -> server-final.
type SCRAMServer struct {
	store     *SCRAMStore
	mechanism string
	h         func() hash.Hash
	step      int

	user            string
	cred            SCRAMCredential
	known           bool
	gs2Header       string
	clientFirstBare string
	serverFirst     string
	nonce           string
}

// NewSCRAMServer starts an exchange for mechanism (SCRAM-SHA-256 or -512).
func (s *SCRAMStore) NewSCRAMServer(mechanism string) (*SCRAMServer, error) {
	h, err := scramHash(mechanism)
	if err != nil {
		return nil, err
	}
	return &SCRAMServer{store: s, mechanism: mechanism, h: h}, nil
}

// Step consumes the client's next message. It returns the server's answer;
// done is true with the final answer, when p is the authenticated user. Any
// error (wrapping ErrAuthentication) ends the exchange.
func (x *SCRAMServer) Step(ctx context.Context, msg []byte) (resp []byte, done bool, p Principal, err error) {
	x.step++
	switch x.step {
	case 1:
		resp, err = x.first(ctx, string(msg))
		return resp, false, Principal{}, err
	case 2:
		resp, p, err = x.final(string(msg))
		return resp, true, p, err
	}
	return nil, true, Principal{}, fmt.Errorf("%w: SCRAM exchange already finished", ErrAuthentication)
}

func scramFail(format string, a ...any) error {
	return fmt.Errorf("%w: SCRAM: %s", ErrAuthentication, fmt.Sprintf(format, a...))
}

func (x *SCRAMServer) first(ctx context.Context, msg string) ([]byte, error) {
	// gs2-header: "n,," or "y,," (no channel binding), optional a=authzid.
	parts := strings.SplitN(msg, ",", 3)
	if len(parts) != 3 {
		return nil, scramFail("malformed client-first-message")
	}
	switch {
	case parts[0] == "n" || parts[0] == "y":
	case strings.HasPrefix(parts[0], "p="):
		return nil, scramFail("channel binding is not supported")
	default:
		return nil, scramFail("malformed gs2 header")
	}
	x.gs2Header = parts[0] + "," + parts[1] + ","
	x.clientFirstBare = parts[2]
	attrs := strings.Split(x.clientFirstBare, ",")
	if len(attrs) < 2 || !strings.HasPrefix(attrs[0], "n=") || !strings.HasPrefix(attrs[1], "r=") || len(attrs[1]) < 3 {
		return nil, scramFail("client-first-message needs n= and r=")
	}
	user, ok := decodeSASLName(attrs[0][2:])
	if !ok || user == "" {
		return nil, scramFail("bad user name")
	}
	if authzid := strings.TrimPrefix(parts[1], "a="); parts[1] != "" && authzid != user {
		return nil, scramFail("authorization id %q differs from user %q", authzid, user)
	}
	x.user = user
	cred, err := x.store.Get(ctx, x.mechanism, user)
	switch {
	case err == nil:
		x.cred, x.known = cred, true
	case errors.Is(err, ErrUnknownUser):
		// Answer like for a real user; fail at the proof.
		x.cred = SCRAMCredential{Salt: hmacSum(sha256.New, x.store.fakeSecret, []byte(x.mechanism+":"+user))[:24], Iterations: DefaultSCRAMIterations}
	default:
		return nil, fmt.Errorf("%w: SCRAM: %w", ErrAuthentication, err)
	}
	snonce := make([]byte, 24)
	rand.Read(snonce)
	x.nonce = attrs[1][2:] + base64.RawStdEncoding.EncodeToString(snonce)
	x.serverFirst = "r=" + x.nonce + ",s=" + base64.StdEncoding.EncodeToString(x.cred.Salt) + ",i=" + strconv.Itoa(x.cred.Iterations)
	return []byte(x.serverFirst), nil
}

func (x *SCRAMServer) final(msg string) ([]byte, Principal, error) {
	i := strings.LastIndex(msg, ",p=")
	if i < 0 {
		return nil, Principal{}, scramFail("client-final-message without proof")
	}
	withoutProof, proofB64 := msg[:i], msg[i+3:]
	attrs := strings.Split(withoutProof, ",")
	if len(attrs) < 2 || attrs[0] != "c="+base64.StdEncoding.EncodeToString([]byte(x.gs2Header)) {
		return nil, Principal{}, scramFail("channel binding mismatch")
	}
	// RFC 5802 wants the nonce echoed exactly; librdkafka prefixes it with
	// its client nonce once more. Kafka accepts any nonce that ends with the
	// server's (ScramSaslServer), and so do we: the server part is there.
	if !strings.HasPrefix(attrs[1], "r=") || !strings.HasSuffix(attrs[1], x.nonce) {
		return nil, Principal{}, scramFail("nonce mismatch")
	}
	proof, err := base64.StdEncoding.DecodeString(proofB64)
	if err != nil || len(proof) != x.h().Size() {
		return nil, Principal{}, scramFail("malformed proof")
	}
	authMsg := []byte(x.clientFirstBare + "," + x.serverFirst + "," + withoutProof)
	if !x.known {
		return nil, Principal{}, scramFail("unknown user %q", x.user)
	}
	sig := hmacSum(x.h, x.cred.StoredKey, authMsg)
	clientKey := make([]byte, len(proof))
	for k := range proof {
		clientKey[k] = proof[k] ^ sig[k]
	}
	stored := x.h()
	stored.Write(clientKey)
	if subtle.ConstantTimeCompare(stored.Sum(nil), x.cred.StoredKey) != 1 {
		return nil, Principal{}, scramFail("wrong password for %q", x.user)
	}
	serverSig := hmacSum(x.h, x.cred.ServerKey, authMsg)
	return []byte("v=" + base64.StdEncoding.EncodeToString(serverSig)),
		Principal{Role: x.user, Tenant: x.cred.Tenant, Namespace: x.cred.Namespace}, nil
}

// decodeSASLName undoes RFC 5802's "=2C" and "=3D" escapes.
func decodeSASLName(s string) (string, bool) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		switch {
		case strings.HasPrefix(s[i:], "=2C"):
			b.WriteByte(',')
		case strings.HasPrefix(s[i:], "=3D"):
			b.WriteByte('=')
		default:
			return "", false
		}
		i += 2
	}
	return b.String(), true
}
