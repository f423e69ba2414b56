package auth

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"

	"github.com/golang-jwt/jwt/v5"
)

// TokenVerifier checks JWTs the way Pulsar's AuthenticationProviderToken
// does: signed with the configured key (HS256 with a secret; RS256/ES256
// with a public key), "exp" honoured when present, "sub" is the role.
type TokenVerifier struct {
	key     any
	methods []string
}

// NewSecretVerifier verifies HS256/384/512 tokens signed with secret.
func NewSecretVerifier(secret []byte) (*TokenVerifier, error) {
	if len(secret) == 0 {
		return nil, errors.New("auth: empty token secret key")
	}
	return &TokenVerifier{key: secret, methods: []string{"HS256", "HS384", "HS512"}}, nil
}

// NewPublicKeyVerifier verifies RS*/PS* or ES* tokens with a PKIX public
// key, PEM ("PUBLIC KEY") or DER (what `pulsar tokens create-key-pair` writes).
func NewPublicKeyVerifier(key []byte) (*TokenVerifier, error) {
	if b, _ := pem.Decode(key); b != nil {
		key = b.Bytes
	}
	pub, err := x509.ParsePKIXPublicKey(key)
	if err != nil {
		return nil, fmt.Errorf("auth: token public key: %w", err)
	}
	return &TokenVerifier{key: pub, methods: []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"}}, nil
}

// LoadTokenVerifier reads the secret key file (raw bytes) or the public key
// file; it returns nil, nil when both names are empty.
func LoadTokenVerifier(secretKeyFile, publicKeyFile string) (*TokenVerifier, error) {
	switch {
	case secretKeyFile != "" && publicKeyFile != "":
		return nil, errors.New("auth: set a token secret key or a public key, not both")
	case secretKeyFile != "":
		b, err := os.ReadFile(secretKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: token secret key: %w", err)
		}
		return NewSecretVerifier(b)
	case publicKeyFile != "":
		b, err := os.ReadFile(publicKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth: token public key: %w", err)
		}
		return NewPublicKeyVerifier(b)
	}
	return nil, nil
}

// Verify checks token and returns its principal (Role = "sub").
func (v *TokenVerifier) Verify(token string) (Principal, error) {
	claims := jwt.RegisteredClaims{}
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return v.key, nil },
		jwt.WithValidMethods(v.methods))
	if errors.Is(err, jwt.ErrTokenExpired) {
		return Principal{}, fmt.Errorf("%w: %w: %w", ErrAuthentication, ErrTokenExpired, err)
	}
	if err != nil {
		return Principal{}, fmt.Errorf("%w: token: %w", ErrAuthentication, err)
	}
	if claims.Subject == "" {
		return Principal{}, fmt.Errorf("%w: token has no subject", ErrAuthentication)
	}
	return Principal{Role: claims.Subject}, nil
}
