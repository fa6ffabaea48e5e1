// Package secrets encrypts connector credentials at rest, so that API keys
// stored in OpenSearch system indices are useless to anyone who can read the
// index but not the sidecar's key file.
//
// Every value is sealed on its own with AES-256-GCM and carries the id of the
// key that sealed it. A Keyring holds several keys: the newest encrypts, all
// of them decrypt, so a key is rotated by adding a new one, re-encrypting at
// leisure, and only then removing the old one — without downtime.
//
// A ciphertext looks like
//
//	mlsc1:<key id>:<base64 raw URL of nonce(12) || sealed value>
//
// and is authenticated together with "mlsc1:<key id>", so it cannot be moved
// to another key id.
package secrets

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// prefix marks and versions the envelope, so a future format can live next
// to this one and a stored value shows at a glance whether it is encrypted.
const prefix = "mlsc1:"

// maxIDLen keeps key ids short: they are stored with every ciphertext.
const maxIDLen = 64

// ErrUnknownKey means a ciphertext names a key id that is not in the keyring,
// typically because the key was retired before every value was re-encrypted.
// Callers tell it apart from tampering to point operators at the key file.
var ErrUnknownKey = errors.New("unknown key id")

// ErrMalformed means a value is not a ciphertext this package produced with a
// key in the keyring: not an envelope, corrupt, truncated or tampered with.
var ErrMalformed = errors.New("malformed ciphertext")

// Key is one AES-256 key with a short id. The id is stored in clear with each
// ciphertext so the right key can be found after rotation.
type Key struct {
	ID     string
	Secret [32]byte
}

// GenerateKey returns a new random key, for operators creating or rotating
// the key file.
func GenerateKey(id string) (Key, error) {
	if err := checkID(id); err != nil {
		return Key{}, err
	}
	k := Key{ID: id}
	if _, err := rand.Read(k.Secret[:]); err != nil {
		return Key{}, fmt.Errorf("generate key: %w", err)
	}
	return k, nil
}

// Encode returns the secret in the key file's encoding, for storing a key made
// by GenerateKey.
func (k Key) Encode() string {
	return base64.StdEncoding.EncodeToString(k.Secret[:])
}

// String returns only the id, so printing a Key with fmt (%v, %s, %+v) never
// leaks its secret.
func (k Key) String() string {
	return "Key(" + k.ID + ")"
}

// DecodeKey builds a key from its id and base64 secret, as stored in the key
// file. Its errors never include the secret.
func DecodeKey(id, b64 string) (Key, error) {
	if err := checkID(id); err != nil {
		return Key{}, err
	}
	// The decoder's own error is dropped: it quotes nothing today, but the
	// secret must not leak if that ever changes.
	secret, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return Key{}, fmt.Errorf("key %q: secret is not valid standard base64", id)
	}
	k := Key{ID: id}
	if len(secret) != len(k.Secret) {
		return Key{}, fmt.Errorf("key %q: secret is %d bytes, want %d", id, len(secret), len(k.Secret))
	}
	copy(k.Secret[:], secret)
	return k, nil
}

// ParseKeys reads a key file (a Kubernetes Secret mounted as a file): one key
// per line as "<id>:<base64 std of 32 bytes>"; blank lines and lines starting
// with '#' are ignored. Keys are returned in file order, so the last one is the
// newest when passed to NewKeyring. Errors name the line, never the secret.
func ParseKeys(data []byte) ([]Key, error) {
	var keys []Key
	lineOf := map[string]int{}
	for i, line := range bytes.Split(data, []byte("\n")) {
		n := i + 1
		line = bytes.TrimSpace(line)
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		id, b64, ok := strings.Cut(string(line), ":")
		if !ok {
			return nil, fmt.Errorf("key file line %d: want <id>:<base64 key>", n)
		}
		id, b64 = strings.TrimSpace(id), strings.TrimSpace(b64)
		if checkID(id) != nil {
			// The bad id is not quoted: it may be key material in the wrong place.
			return nil, fmt.Errorf("key file line %d: key id must be 1-%d of [A-Za-z0-9_.-]", n, maxIDLen)
		}
		if first, dup := lineOf[id]; dup {
			return nil, fmt.Errorf("key file line %d: duplicate key id %q (first on line %d)", n, id, first)
		}
		k, err := DecodeKey(id, b64)
		if err != nil {
			return nil, fmt.Errorf("key file line %d: %w", n, err)
		}
		lineOf[id] = n
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, errors.New("key file has no keys")
	}
	return keys, nil
}

// Keyring encrypts with its newest key and decrypts with any of its keys. It
// is immutable and safe for concurrent use; rotate by building a new one.
type Keyring struct {
	newest string
	aeads  map[string]cipher.AEAD
}

// NewKeyring returns a keyring of keys; the last one is the newest and
// encrypts. It needs at least one key, unique valid ids and no all-zero
// secret (the sign of a Key that was never filled in).
func NewKeyring(keys ...Key) (*Keyring, error) {
	if len(keys) == 0 {
		return nil, errors.New("keyring needs at least one key")
	}
	r := &Keyring{aeads: make(map[string]cipher.AEAD, len(keys))}
	for i, k := range keys {
		if err := checkID(k.ID); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		if _, dup := r.aeads[k.ID]; dup {
			return nil, fmt.Errorf("duplicate key id %q", k.ID)
		}
		if k.Secret == [32]byte{} {
			return nil, fmt.Errorf("key %q has an all-zero secret", k.ID)
		}
		block, err := aes.NewCipher(k.Secret[:])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		// The random-nonce AEAD prepends a fresh 12-byte nonce on Seal and
		// reads it back on Open, which is exactly our payload layout.
		aead, err := cipher.NewGCMWithRandomNonce(block)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k.ID, err)
		}
		r.aeads[k.ID] = aead
	}
	r.newest = keys[len(keys)-1].ID
	return r, nil
}

// Encrypt seals plaintext with the newest key. The error is always nil today;
// it is kept so a key backend that can fail (a KMS) needs no API change.
func (r *Keyring) Encrypt(plaintext string) (string, error) {
	sealed := r.aeads[r.newest].Seal(nil, nil, []byte(plaintext), aad(r.newest))
	return prefix + r.newest + ":" + base64.RawURLEncoding.EncodeToString(sealed), nil
}

// Decrypt opens a ciphertext made by Encrypt with any key in the keyring.
// Errors wrap ErrUnknownKey or ErrMalformed and never include the plaintext
// or key material.
func (r *Keyring) Decrypt(ciphertext string) (string, error) {
	rest, ok := strings.CutPrefix(ciphertext, prefix)
	if !ok {
		return "", fmt.Errorf("cannot decrypt credential: %w: no %q prefix", ErrMalformed, prefix)
	}
	id, payload, ok := strings.Cut(rest, ":")
	if !ok || checkID(id) != nil {
		return "", fmt.Errorf("cannot decrypt credential: %w: bad key id", ErrMalformed)
	}
	aead, ok := r.aeads[id]
	if !ok {
		return "", fmt.Errorf("cannot decrypt credential: %w %q", ErrUnknownKey, id)
	}
	// Strict decoding plus the length check accept only the canonical
	// encoding (the decoder would otherwise skip CR/LF), so nothing but the
	// exact string Encrypt returned decrypts.
	sealed, err := base64.RawURLEncoding.Strict().DecodeString(payload)
	if err != nil || base64.RawURLEncoding.EncodedLen(len(sealed)) != len(payload) {
		return "", fmt.Errorf("cannot decrypt credential: %w: bad base64", ErrMalformed)
	}
	plain, err := aead.Open(nil, nil, sealed, aad(id))
	if err != nil {
		return "", fmt.Errorf("cannot decrypt credential: %w: authentication failed", ErrMalformed)
	}
	return string(plain), nil
}

// EncryptMap encrypts every value of a credential map separately, keeping the
// map keys in clear so fields stay addressable. A nil map stays nil.
func (r *Keyring) EncryptMap(m map[string]string) (map[string]string, error) {
	return r.mapValues(m, r.Encrypt)
}

// DecryptMap reverses EncryptMap. Errors name the map key of the first value
// (in sorted order) that fails, never the value.
func (r *Keyring) DecryptMap(m map[string]string) (map[string]string, error) {
	return r.mapValues(m, r.Decrypt)
}

func (r *Keyring) mapValues(m map[string]string, f func(string) (string, error)) (map[string]string, error) {
	if m == nil {
		return nil, nil
	}
	out := make(map[string]string, len(m))
	// Sorted so the same bad map always reports the same key.
	for _, k := range slices.Sorted(maps.Keys(m)) {
		v, err := f(m[k])
		if err != nil {
			return nil, fmt.Errorf("%q: %w", k, err)
		}
		out[k] = v
	}
	return out, nil
}

// IsEncrypted reports whether s carries our envelope prefix, so callers can
// migrate values stored in clear before encryption was turned on. It does not
// check that s decrypts.
func IsEncrypted(s string) bool {
	return strings.HasPrefix(s, prefix)
}

// aad binds a ciphertext to its key id, so editing the id in the envelope
// fails authentication.
func aad(id string) []byte {
	return []byte(prefix + id)
}

// checkID enforces [A-Za-z0-9_.-]{1,64}: ids must not contain ':' (the
// envelope separator) and must be safe to quote in errors and logs.
func checkID(id string) error {
	if len(id) == 0 || len(id) > maxIDLen {
		return fmt.Errorf("key id must be 1-%d characters", maxIDLen)
	}
	for _, c := range []byte(id) {
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '.' || c == '-'
		if !ok {
			return errors.New("key id may only contain [A-Za-z0-9_.-]")
		}
	}
	return nil
}
