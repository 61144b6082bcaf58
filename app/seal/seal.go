// Package seal encrypts values at rest with AES-256-GCM under a master key that can rotate.
//
// Every sealed value is bound to the identity of the row that holds it through GCM's
// additional data, so a ciphertext copied into another row (another project, scope or key)
// fails to open instead of silently leaking into the wrong place.
package seal

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the master key length: 32 bytes, AES-256.
const KeySize = 32

// NonceSize is GCM's standard 96-bit nonce, drawn at random for every seal.
const NonceSize = 12

// ErrOpen is returned when a sealed value cannot be opened: wrong key, wrong row or tampered bytes.
var ErrOpen = errors.New("sealed value does not open: it was tampered with, copied from another row, or sealed under another key")

// ErrUnknownKey is returned when a value names a key id the keyring does not hold.
var ErrUnknownKey = errors.New("sealed value names a master key this server does not have")

// Sealed is a ciphertext with what is needed to open it.
type Sealed struct {
	Ciphertext []byte
	Nonce      []byte
	KeyID      string
}

// Keyring holds the current master key, used to seal, and older keys still accepted to open.
type Keyring struct {
	current string
	aeads   map[string]cipher.AEAD
}

// ParseKey decodes a base64 master key (standard or URL alphabet, padded or not) and checks its length.
func ParseKey(b64 string) ([]byte, error) {
	s := strings.TrimSpace(b64)
	if s == "" {
		return nil, errors.New("secret key is empty: generate one with `openssl rand -base64 32`")
	}
	var key []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if key, err = enc.DecodeString(s); err == nil {
			break
		}
	}
	if err != nil {
		return nil, errors.New("secret key is not valid base64: generate one with `openssl rand -base64 32`")
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("secret key is %d bytes, want %d: generate one with `openssl rand -base64 32`", len(key), KeySize)
	}
	return key, nil
}

// KeyID derives a short public identifier from a key. It reveals nothing useful about the key.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("stagely seal key id v1\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// NewKeyring builds a keyring that seals with current and opens with current or any of previous.
func NewKeyring(current []byte, previous ...[]byte) (*Keyring, error) {
	kr := &Keyring{aeads: make(map[string]cipher.AEAD, 1+len(previous))}
	for i, key := range append([][]byte{current}, previous...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("master key %d is %d bytes, want %d", i, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("create cipher: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("create GCM: %w", err)
		}
		id := KeyID(key)
		if i == 0 {
			kr.current = id
		}
		kr.aeads[id] = aead
	}
	return kr, nil
}

// CurrentKeyID names the key new values are sealed with.
func (k *Keyring) CurrentKeyID() string { return k.current }

// Seal encrypts plaintext under the current key, bound to ad (the row's identity).
func (k *Keyring) Seal(plaintext, ad []byte) (Sealed, error) {
	nonce := make([]byte, NonceSize)
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("draw nonce: %w", err)
	}
	ct := k.aeads[k.current].Seal(nil, nonce, plaintext, ad)
	return Sealed{Ciphertext: ct, Nonce: nonce, KeyID: k.current}, nil
}

// Open decrypts s, which must have been sealed with the same ad.
func (k *Keyring) Open(s Sealed, ad []byte) ([]byte, error) {
	aead, ok := k.aeads[s.KeyID]
	if !ok {
		return nil, fmt.Errorf("%w (key id %q)", ErrUnknownKey, s.KeyID)
	}
	if len(s.Nonce) != NonceSize {
		return nil, ErrOpen
	}
	pt, err := aead.Open(nil, s.Nonce, s.Ciphertext, ad)
	if err != nil {
		return nil, ErrOpen
	}
	return pt, nil
}

// Reseal opens s with whichever key sealed it and seals it again under the current key.
func (k *Keyring) Reseal(s Sealed, ad []byte) (Sealed, error) {
	pt, err := k.Open(s, ad)
	if err != nil {
		return Sealed{}, err
	}
	defer clear(pt)
	return k.Seal(pt, ad)
}

// SecretAD is the additional data binding a project secret to its row identity.
func SecretAD(projectID int64, scope, key string) []byte {
	return adFor("secret", fmt.Sprint(projectID), scope, key)
}

// PreviewSecretAD binds a secret of a project's preview set to its row identity. It differs
// from SecretAD's for the same project, scope and key, so a sealed value cannot be moved
// between the production and preview sets.
func PreviewSecretAD(projectID int64, scope, key string) []byte {
	return adFor("preview-secret", fmt.Sprint(projectID), scope, key)
}

// SessionTokenAD binds a user's sealed GitHub token to its session.
func SessionTokenAD(sessionIDHash []byte) []byte {
	return adFor("session-token", hex.EncodeToString(sessionIDHash))
}

// AppCredentialsAD binds the stored GitHub App credentials to their row.
func AppCredentialsAD(appID int64) []byte {
	return adFor("github-app", fmt.Sprint(appID))
}

// adFor joins parts with a length prefix each, so ("a", "bc") and ("ab", "c") differ.
func adFor(parts ...string) []byte {
	var b []byte
	for _, p := range parts {
		b = fmt.Appendf(b, "%d:%s;", len(p), p)
	}
	return b
}
