// Package auth issues and verifies the apps' bearer tokens (HMAC-signed JWTs, golang-jwt) and
// hashes passwords with argon2id (golang.org/x/crypto), a deliberately slow, memory-hard hash.
package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/argon2"

	"github.com/scalestack/scalestack/pkg/shard"
)

// MinKeyBytes is the shortest signing key accepted.
const MinKeyBytes = 32

// Issuer is the tokens' iss claim.
const Issuer = "scalestack"

// Tokens signs and verifies tokens with one key.
type Tokens struct {
	key []byte
	ttl time.Duration
	now func() time.Time
}

// NewTokens returns a signer; key must be at least MinKeyBytes long.
func NewTokens(key []byte, ttl time.Duration) (*Tokens, error) {
	if len(key) < MinKeyBytes {
		return nil, fmt.Errorf("the token key must be at least %d bytes, got %d", MinKeyBytes, len(key))
	}
	if ttl <= 0 {
		ttl = 24 * time.Hour
	}
	return &Tokens{key: key, ttl: ttl, now: time.Now}, nil
}

// Issue returns a token for user.
func (t *Tokens) Issue(user shard.ID) (string, error) {
	now := t.now()
	claims := jwt.RegisteredClaims{
		Issuer:    Issuer,
		Subject:   user.String(),
		IssuedAt:  jwt.NewNumericDate(now),
		ExpiresAt: jwt.NewNumericDate(now.Add(t.ttl)),
	}
	return jwt.NewWithClaims(jwt.SigningMethodHS256, claims).SignedString(t.key)
}

// ErrInvalidToken covers every reason a token is refused.
var ErrInvalidToken = errors.New("invalid token")

// Verify returns the user a token was issued to. Only HS256 is accepted (no "none", no key
// confusion), and the issuer and expiry are checked.
func (t *Tokens) Verify(token string) (shard.ID, error) {
	if len(token) > 1024 {
		return 0, fmt.Errorf("%w: too long", ErrInvalidToken)
	}
	var claims jwt.RegisteredClaims
	_, err := jwt.ParseWithClaims(token, &claims, func(*jwt.Token) (any, error) { return t.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(Issuer),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(t.now))
	if err != nil {
		return 0, fmt.Errorf("%w: %w", ErrInvalidToken, err)
	}
	id, err := shard.ParseID(claims.Subject)
	if err != nil {
		return 0, fmt.Errorf("%w: subject: %w", ErrInvalidToken, err)
	}
	return id, nil
}

// HashParams are argon2id's costs. The defaults are OWASP's recommended minimum (19 MiB, 2
// passes, 1 lane).
type HashParams struct {
	Time    uint32
	Memory  uint32 // KiB
	Threads uint8
}

// DefaultHashParams are used unless the service is told otherwise.
var DefaultHashParams = HashParams{Time: 2, Memory: 19 * 1024, Threads: 1}

// HashPassword returns an encoded argon2id hash (PHC string format) of password with a random salt.
func HashPassword(password string, p HashParams) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	sum := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, 32)
	b64 := base64.RawStdEncoding
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.Memory, p.Time, p.Threads,
		b64.EncodeToString(salt), b64.EncodeToString(sum)), nil
}

// CheckPassword reports whether password matches an encoded hash, in constant time.
func CheckPassword(password, encoded string) (bool, error) {
	parts := strings.Split(encoded, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false, errors.New("unknown password hash format")
	}
	var v int
	var p HashParams
	if _, err := fmt.Sscanf(parts[2], "v=%d", &v); err != nil || v != argon2.Version {
		return false, errors.New("unknown argon2 version")
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err != nil {
		return false, fmt.Errorf("argon2 parameters: %w", err)
	}
	b64 := base64.RawStdEncoding
	salt, err := b64.DecodeString(parts[4])
	if err != nil {
		return false, err
	}
	want, err := b64.DecodeString(parts[5])
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}
