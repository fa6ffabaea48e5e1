package secrets_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"strings"
	"sync"
	"testing"

	"github.com/mlsidecar/mlsidecar/mlcommons/secrets"
)

// golden was produced once by Encrypt with goldenKey. It pins the stored
// format: values encrypted by an older build must keep decrypting.
const (
	golden          = "mlsc1:golden:7lTrMZaBMlm0IzIC-CeovxYo-iexl6CZ58GQgkGGHZS94_Mujrs6WIIJsJLc5QSA"
	goldenPlaintext = "sk-golden-credential"
)

// goldenKey is testKey("golden", 1); its secret in the key file encoding.
const goldenKeyB64 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="

// testKey returns a deterministic key, so failures reproduce.
func testKey(id string, seed byte) secrets.Key {
	k := secrets.Key{ID: id}
	for i := range k.Secret {
		k.Secret[i] = seed + byte(i)
	}
	return k
}

func newRing(t testing.TB, keys ...secrets.Key) *secrets.Keyring {
	t.Helper()
	r, err := secrets.NewKeyring(keys...)
	if err != nil {
		t.Fatalf("NewKeyring: %v", err)
	}
	return r
}

func encrypt(t testing.TB, r *secrets.Keyring, plaintext string) string {
	t.Helper()
	c, err := r.Encrypt(plaintext)
	if err != nil {
		t.Fatalf("Encrypt: %v", err)
	}
	return c
}

func TestRoundTrip(t *testing.T) {
	r := newRing(t, testKey("k1", 1))
	tests := []struct {
		name      string
		plaintext string
	}{
		{"empty", ""},
		{"api key", "sk-proj-0123456789abcdef"},
		{"unicode", "clé secrète 🔑"},
		{"looks like an envelope", "mlsc1:k1:AAAA"},
		{"large", strings.Repeat("x", 1<<16)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := encrypt(t, r, tt.plaintext)
			if !strings.HasPrefix(c, "mlsc1:k1:") {
				t.Errorf("got ciphertext prefix %.12q, want %q", c, "mlsc1:k1:")
			}
			if !secrets.IsEncrypted(c) {
				t.Errorf("IsEncrypted(ciphertext) = false, want true")
			}
			got, err := r.Decrypt(c)
			if err != nil {
				t.Fatalf("Decrypt: %v", err)
			}
			if got != tt.plaintext {
				t.Errorf("got %.40q, want %.40q", got, tt.plaintext)
			}
		})
	}
}

func TestGolden(t *testing.T) {
	k, err := secrets.DecodeKey("golden", goldenKeyB64)
	if err != nil {
		t.Fatalf("DecodeKey: %v", err)
	}
	if k != testKey("golden", 1) {
		t.Fatalf("goldenKeyB64 does not decode to testKey(golden, 1)")
	}
	got, err := newRing(t, k).Decrypt(golden)
	if err != nil {
		t.Fatalf("Decrypt(golden): %v", err)
	}
	if got != goldenPlaintext {
		t.Errorf("got %q, want %q", got, goldenPlaintext)
	}
}

func TestEncryptUsesFreshNonce(t *testing.T) {
	r := newRing(t, testKey("k1", 1))
	a, b := encrypt(t, r, "same"), encrypt(t, r, "same")
	if a == b {
		t.Errorf("two encryptions of the same value are equal: %q", a)
	}
}

func TestIsEncrypted(t *testing.T) {
	tests := []struct {
		s    string
		want bool
	}{
		{"mlsc1:k1:AAAA", true},
		{"mlsc1:", true},
		{"sk-plain", false},
		{"MLSC1:k1:AAAA", false},
		{"", false},
	}
	for _, tt := range tests {
		t.Run(tt.s, func(t *testing.T) {
			if got := secrets.IsEncrypted(tt.s); got != tt.want {
				t.Errorf("IsEncrypted(%q) = %v, want %v", tt.s, got, tt.want)
			}
		})
	}
}

func TestRotation(t *testing.T) {
	k1, k2 := testKey("k1", 1), testKey("k2", 100)
	old := encrypt(t, newRing(t, k1), "old")

	both := newRing(t, k1, k2)
	got, err := both.Decrypt(old)
	if err != nil {
		t.Fatalf("ring [k1 k2]: Decrypt(old): %v", err)
	}
	if got != "old" {
		t.Errorf("ring [k1 k2]: got %q, want %q", got, "old")
	}
	fresh := encrypt(t, both, "new")
	if !strings.HasPrefix(fresh, "mlsc1:k2:") {
		t.Errorf("ring [k1 k2] encrypted with %.9q, want the newest key k2", fresh)
	}

	onlyK2 := newRing(t, k2)
	if got, err := onlyK2.Decrypt(fresh); err != nil || got != "new" {
		t.Errorf("ring [k2]: Decrypt(new) = %q, %v; want %q, nil", got, err, "new")
	}
	_, err = onlyK2.Decrypt(old)
	if !errors.Is(err, secrets.ErrUnknownKey) {
		t.Errorf("ring [k2]: Decrypt(old) error = %v, want ErrUnknownKey", err)
	}
}

func TestDecryptRejectsTampering(t *testing.T) {
	const plaintext = "sk-secret" // 9 bytes: 37 sealed bytes leave 4 spare bits in the last base64 character
	r := newRing(t, testKey("k2", 100), testKey("k1", 1))
	c := encrypt(t, r, plaintext)
	payload, ok := strings.CutPrefix(c, "mlsc1:k1:")
	if !ok {
		t.Fatalf("got ciphertext %q, want prefix %q", c, "mlsc1:k1:")
	}

	tests := []struct {
		name       string
		ciphertext string
	}{
		{"not an envelope", plaintext},
		{"empty", ""},
		{"upper-case prefix", "MLSC1:k1:" + payload},
		{"no key id separator", "mlsc1:k1"},
		{"bad key id", "mlsc1:k 1:" + payload},
		{"empty payload", "mlsc1:k1:"},
		{"short payload", "mlsc1:k1:AAAA"},
		{"truncated", c[:len(c)-4]},
		{"flipped character", "mlsc1:k1:" + flip(payload, 5)},
		{"key id swapped to another key", "mlsc1:k2:" + payload},
		{"newline inserted", "mlsc1:k1:" + payload[:10] + "\n" + payload[10:]},
		{"padding added", c + "="},
		{"non-canonical trailing bits", "mlsc1:k1:" + setLowBit(payload)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.ciphertext == c {
				t.Fatalf("test case did not change the ciphertext")
			}
			got, err := r.Decrypt(tt.ciphertext)
			if !errors.Is(err, secrets.ErrMalformed) {
				t.Fatalf("Decrypt = %q, %v; want an error wrapping ErrMalformed", got, err)
			}
			if !strings.HasPrefix(err.Error(), "cannot decrypt credential: ") {
				t.Errorf("got error %q, want prefix %q", err, "cannot decrypt credential: ")
			}
			if strings.Contains(err.Error(), plaintext) {
				t.Errorf("error %q contains the plaintext", err)
			}
		})
	}
}

// TestDecryptBindsKeyID shows the key id is authenticated, not just used to
// pick a key: with the same secret under two ids, moving a ciphertext from one
// id to the other still fails.
func TestDecryptBindsKeyID(t *testing.T) {
	k1 := testKey("k1", 1)
	alias := k1
	alias.ID = "alias"
	r := newRing(t, alias, k1)
	c := encrypt(t, r, "sk-secret")
	moved := strings.Replace(c, "mlsc1:k1:", "mlsc1:alias:", 1)
	if moved == c {
		t.Fatalf("got ciphertext %q, want prefix %q", c, "mlsc1:k1:")
	}
	if got, err := r.Decrypt(moved); !errors.Is(err, secrets.ErrMalformed) {
		t.Errorf("Decrypt(moved) = %q, %v; want an error wrapping ErrMalformed", got, err)
	}
}

// flip replaces the i-th character with another base64 URL character.
func flip(s string, i int) string {
	c := byte('A')
	if s[i] == 'A' {
		c = 'B'
	}
	return s[:i] + string(c) + s[i+1:]
}

// setLowBit sets the lowest bit of the last character. When that bit is
// padding, a lenient decoder yields the same bytes.
func setLowBit(s string) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(alphabet, s[len(s)-1])
	return s[:len(s)-1] + string(alphabet[last|1])
}

func TestParseKeys(t *testing.T) {
	k1, k2 := testKey("k1", 1), testKey("k.2-new_", 100)
	m1, m2 := k1.Encode(), k2.Encode()
	short := base64.StdEncoding.EncodeToString(make([]byte, 16))

	tests := []struct {
		name    string
		data    string
		want    []secrets.Key
		wantErr string // substring; "" means success
	}{
		{
			name: "comments, blank lines, CRLF and spaces",
			data: "# mlsidecar credential keys\n\nk1:" + m1 + "\r\n  # newest last\n k.2-new_ : " + m2 + " \n",
			want: []secrets.Key{k1, k2},
		},
		{name: "bad base64", data: "k1:" + m1[:10] + "!!" + m1[12:], wantErr: "line 1: key \"k1\": secret is not valid standard base64"},
		{name: "wrong length", data: "# one\nk1:" + short, wantErr: "line 2: key \"k1\": secret is 16 bytes, want 32"},
		{name: "duplicate id", data: "k1:" + m1 + "\n\nk1:" + m2, wantErr: "line 3: duplicate key id \"k1\" (first on line 1)"},
		{name: "bad id", data: "k/1:" + m1, wantErr: "line 1: key id must be"},
		{name: "id too long", data: strings.Repeat("a", 65) + ":" + m1, wantErr: "line 1: key id must be"},
		{name: "empty id", data: ":" + m1, wantErr: "line 1: key id must be"},
		{name: "secret before id", data: m1 + ":k1", wantErr: "line 1: key id must be"},
		{name: "missing colon", data: "k1:" + m1 + "\n" + m2, wantErr: "line 2: want <id>:<base64 key>"},
		{name: "empty file", data: "", wantErr: "no keys"},
		{name: "only comments", data: "# no keys yet\n\n", wantErr: "no keys"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := secrets.ParseKeys([]byte(tt.data))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("ParseKeys: %v", err)
				}
				if len(got) != len(tt.want) {
					t.Fatalf("got %d keys, want %d", len(got), len(tt.want))
				}
				for i := range got {
					if got[i] != tt.want[i] {
						t.Errorf("key %d: got %v, want %v (or the secret differs)", i, got[i], tt.want[i])
					}
				}
				return
			}
			if err == nil {
				t.Fatalf("got %d keys, want error containing %q", len(got), tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want it to contain %q", err, tt.wantErr)
			}
			for _, secret := range []string{m1, m2, short, m1[:10], m1[12:]} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q contains key material", err)
				}
			}
		})
	}
}

func TestGenerateKey(t *testing.T) {
	a, err := secrets.GenerateKey("k1")
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	b, err := secrets.GenerateKey("k1")
	if err != nil {
		t.Fatalf("GenerateKey: %v", err)
	}
	if a.ID != "k1" {
		t.Errorf("got id %q, want %q", a.ID, "k1")
	}
	if a.Secret == b.Secret {
		t.Errorf("two generated keys have the same secret")
	}
	got, err := secrets.DecodeKey(a.ID, a.Encode())
	if err != nil {
		t.Fatalf("DecodeKey(Encode()): %v", err)
	}
	if got != a {
		t.Errorf("DecodeKey(Encode()) does not return the generated key")
	}
	if _, err := secrets.GenerateKey("bad:id"); err == nil {
		t.Errorf("GenerateKey(%q): got nil error, want an error", "bad:id")
	}
}

func TestKeyFormattingHidesSecret(t *testing.T) {
	k := testKey("k1", 1)
	for _, verb := range []string{"%v", "%+v", "%s"} {
		if got := fmt.Sprintf(verb, k); got != "Key(k1)" {
			t.Errorf("Sprintf(%q, key) = %q, want %q", verb, got, "Key(k1)")
		}
	}
}

func TestNewKeyringErrors(t *testing.T) {
	tests := []struct {
		name string
		keys []secrets.Key
	}{
		{"no keys", nil},
		{"duplicate id", []secrets.Key{testKey("k1", 1), testKey("k1", 2)}},
		{"id with separator", []secrets.Key{testKey("k:1", 1)}},
		{"empty id", []secrets.Key{testKey("", 1)}},
		{"zero secret", []secrets.Key{{ID: "k1"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := secrets.NewKeyring(tt.keys...); err == nil {
				t.Errorf("got nil error, want an error")
			}
		})
	}
}

func TestEncryptMapDecryptMap(t *testing.T) {
	r := newRing(t, testKey("k1", 1))
	creds := map[string]string{
		"access_key": "AKIAEXAMPLE",
		"secret_key": "wJalrXUtnFEMI",
		"same":       "AKIAEXAMPLE",
		"empty":      "",
	}
	orig := maps.Clone(creds)

	enc, err := r.EncryptMap(creds)
	if err != nil {
		t.Fatalf("EncryptMap: %v", err)
	}
	if !maps.Equal(creds, orig) {
		t.Errorf("EncryptMap changed its input")
	}
	for k, v := range creds {
		c, ok := enc[k]
		if !ok {
			t.Errorf("encrypted map lacks key %q", k)
			continue
		}
		if !secrets.IsEncrypted(c) || (v != "" && strings.Contains(c, v)) {
			t.Errorf("enc[%q] = %q, want a ciphertext", k, c)
		}
	}
	if len(enc) != len(creds) {
		t.Errorf("got %d encrypted entries, want %d", len(enc), len(creds))
	}
	if enc["access_key"] == enc["same"] {
		t.Errorf("equal values got equal ciphertexts; want each encrypted separately")
	}

	dec, err := r.DecryptMap(enc)
	if err != nil {
		t.Fatalf("DecryptMap: %v", err)
	}
	if !maps.Equal(dec, creds) {
		t.Errorf("DecryptMap(EncryptMap(m)) differs from m")
	}

	enc["secret_key"] = "wJalrXUtnFEMI" // stored in clear by mistake
	_, err = r.DecryptMap(enc)
	if !errors.Is(err, secrets.ErrMalformed) {
		t.Fatalf("DecryptMap with a clear value: got %v, want ErrMalformed", err)
	}
	if !strings.Contains(err.Error(), `"secret_key"`) || strings.Contains(err.Error(), "wJalrXUtnFEMI") {
		t.Errorf("got error %q, want it to name the key and not the value", err)
	}

	for name, f := range map[string]func(map[string]string) (map[string]string, error){
		"EncryptMap": r.EncryptMap, "DecryptMap": r.DecryptMap,
	} {
		if got, err := f(nil); got != nil || err != nil {
			t.Errorf("%s(nil) = %v, %v; want nil, nil", name, got, err)
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	k1, k2 := testKey("k1", 1), testKey("k2", 100)
	old := encrypt(t, newRing(t, k1), "old")
	r := newRing(t, k1, k2)

	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				want := fmt.Sprintf("secret-%d-%d", g, i)
				c, err := r.Encrypt(want)
				if err != nil {
					t.Errorf("Encrypt: %v", err)
					return
				}
				if got, err := r.Decrypt(c); err != nil || got != want {
					t.Errorf("Decrypt = %q, %v; want %q, nil", got, err, want)
					return
				}
				if got, err := r.Decrypt(old); err != nil || got != "old" {
					t.Errorf("Decrypt(old) = %q, %v; want %q, nil", got, err, "old")
					return
				}
			}
		})
	}
	wg.Wait()
}

// FuzzDecrypt checks that no input panics and that nothing decrypts except
// the one ciphertext Encrypt produced (golden): forging or re-encoding it must
// fail. It also checks that every input round-trips as a plaintext.
func FuzzDecrypt(f *testing.F) {
	r := newRing(f, testKey("golden", 1), testKey("k2", 100))
	payload := strings.TrimPrefix(golden, "mlsc1:golden:")
	for _, s := range []string{
		golden,
		"mlsc1:k2:" + payload,
		"mlsc1:golden:" + flip(payload, 5),
		golden[:len(golden)-3],
		golden + "=",
		"mlsc1:golden:" + payload[:8] + "\r\n" + payload[8:],
		"mlsc1:nokey:" + payload,
		"mlsc1:golden:",
		"mlsc1:golden:AAAA",
		"mlsc1:",
		"mlsc1",
		"",
		"sk-plain-credential",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := r.Decrypt(s)
		switch {
		case err == nil && s != golden:
			t.Fatalf("Decrypt(%q) = %q, nil; only Encrypt output may decrypt", s, got)
		case err == nil && got != goldenPlaintext:
			t.Fatalf("Decrypt(golden) = %q, want %q", got, goldenPlaintext)
		case err != nil && !errors.Is(err, secrets.ErrMalformed) && !errors.Is(err, secrets.ErrUnknownKey):
			t.Fatalf("Decrypt(%q) error %v wraps neither ErrMalformed nor ErrUnknownKey", s, err)
		}

		c := encrypt(t, r, s)
		if got, err := r.Decrypt(c); err != nil || got != s {
			t.Fatalf("Decrypt(Encrypt(%q)) = %q, %v", s, got, err)
		}
	})
}

// FuzzParseKeys checks that no input panics and that whatever parses is a
// usable set of keys: valid, unique ids that survive Encode/DecodeKey.
func FuzzParseKeys(f *testing.F) {
	m1 := testKey("k1", 1).Encode()
	for _, s := range []string{
		"# keys\n\nk1:" + m1 + "\r\nk2:" + goldenKeyB64 + "\n",
		"k1:" + m1 + "\nk1:" + m1,
		"k1:" + m1[:20],
		"k/1:" + m1,
		m1,
		":",
		"",
		"#",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := secrets.ParseKeys(data)
		if err != nil {
			return
		}
		if len(keys) == 0 {
			t.Fatalf("ParseKeys returned no keys and no error")
		}
		seen := map[string]bool{}
		for _, k := range keys {
			if seen[k.ID] {
				t.Fatalf("duplicate id %q", k.ID)
			}
			seen[k.ID] = true
			got, err := secrets.DecodeKey(k.ID, k.Encode())
			if err != nil || got != k {
				t.Fatalf("DecodeKey(%q, Encode()) = %v, %v; want the parsed key", k.ID, got, err)
			}
		}
	})
}
