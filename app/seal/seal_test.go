package seal_test

import (
	"bytes"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/apptest"
	"github.com/stagely/stagely/app/seal"
)

func TestSeal_RoundTripKeepsBytesExact(t *testing.T) {
	t.Parallel()
	kr := apptest.Keyring(t, nil)
	for _, v := range []string{"", "p@ss$word", "multi\nline\nvalue", "ünïcødé ✓", strings.Repeat("x", 1<<16)} {
		ad := seal.SecretAD(7, "global", "DB_URL")
		s, err := kr.Seal([]byte(v), ad)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(s.Ciphertext, []byte(v)) && v != "" {
			t.Fatalf("ciphertext contains the plaintext")
		}
		got, err := kr.Open(s, ad)
		if err != nil {
			t.Fatalf("open: %v", err)
		}
		if string(got) != v {
			t.Fatalf("round trip changed the value: got %q", got)
		}
	}
}

func TestSeal_NonceIsFreshForEveryWrite(t *testing.T) {
	t.Parallel()
	kr := apptest.Keyring(t, nil)
	seen := map[string]bool{}
	for i := 0; i < 1000; i++ {
		s, err := kr.Seal([]byte("same"), []byte("ad"))
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Nonce) != seal.NonceSize {
			t.Fatalf("nonce is %d bytes", len(s.Nonce))
		}
		if seen[string(s.Nonce)] {
			t.Fatalf("nonce repeated after %d seals", i)
		}
		seen[string(s.Nonce)] = true
	}
}

func TestSeal_OpenRefuses(t *testing.T) {
	t.Parallel()
	key := apptest.Key(t)
	kr := apptest.Keyring(t, key)
	ad := seal.SecretAD(1, "backend", "API_KEY")
	good, err := kr.Seal([]byte("hunter2"), ad)
	if err != nil {
		t.Fatal(err)
	}
	flip := func(b []byte, i int) []byte { c := bytes.Clone(b); c[i] ^= 1; return c }

	tests := []struct {
		name    string
		keyring *seal.Keyring
		sealed  seal.Sealed
		ad      []byte
		want    error
	}{
		{"tampered ciphertext", kr, seal.Sealed{Ciphertext: flip(good.Ciphertext, 0), Nonce: good.Nonce, KeyID: good.KeyID}, ad, seal.ErrOpen},
		{"tampered tag", kr, seal.Sealed{Ciphertext: flip(good.Ciphertext, len(good.Ciphertext)-1), Nonce: good.Nonce, KeyID: good.KeyID}, ad, seal.ErrOpen},
		{"tampered nonce", kr, seal.Sealed{Ciphertext: good.Ciphertext, Nonce: flip(good.Nonce, 3), KeyID: good.KeyID}, ad, seal.ErrOpen},
		{"short nonce", kr, seal.Sealed{Ciphertext: good.Ciphertext, Nonce: good.Nonce[:8], KeyID: good.KeyID}, ad, seal.ErrOpen},
		{"copied to another project", kr, good, seal.SecretAD(2, "backend", "API_KEY"), seal.ErrOpen},
		{"copied to another scope", kr, good, seal.SecretAD(1, "global", "API_KEY"), seal.ErrOpen},
		{"copied to another key", kr, good, seal.SecretAD(1, "backend", "API_KEY2"), seal.ErrOpen},
		{"ambiguous join of scope and key", kr, good, seal.SecretAD(1, "backendA", "PI_KEY"), seal.ErrOpen},
		{"wrong master key with the same id label", apptest.Keyring(t, nil), seal.Sealed{Ciphertext: good.Ciphertext, Nonce: good.Nonce, KeyID: seal.KeyID(apptest.Key(t))}, ad, seal.ErrUnknownKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			pt, err := tt.keyring.Open(tt.sealed, tt.ad)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open = %q, %v; want %v", pt, err, tt.want)
			}
		})
	}
}

func TestSeal_WrongKeyUnderForgedKeyIDDoesNotOpen(t *testing.T) {
	t.Parallel()
	keyA, keyB := apptest.Key(t), apptest.Key(t)
	sealed, err := apptest.Keyring(t, keyA).Seal([]byte("v"), []byte("ad"))
	if err != nil {
		t.Fatal(err)
	}
	// A row edited to claim key B's id must still not open under key B.
	sealed.KeyID = seal.KeyID(keyB)
	if _, err := apptest.Keyring(t, keyB).Open(sealed, []byte("ad")); !errors.Is(err, seal.ErrOpen) {
		t.Fatalf("got %v, want ErrOpen", err)
	}
}

func TestSeal_RotationOpensOldAndSealsNew(t *testing.T) {
	t.Parallel()
	oldKey, newKeyBytes := apptest.Key(t), apptest.Key(t)
	oldRing := apptest.Keyring(t, oldKey)
	ad := seal.SecretAD(3, "global", "TOKEN")
	s, err := oldRing.Seal([]byte("v1"), ad)
	if err != nil {
		t.Fatal(err)
	}

	rotating := apptest.Keyring(t, newKeyBytes, oldKey)
	if rotating.CurrentKeyID() == s.KeyID {
		t.Fatal("new and old key share an id")
	}
	if got, err := rotating.Open(s, ad); err != nil || string(got) != "v1" {
		t.Fatalf("old value under rotating keyring: %q, %v", got, err)
	}
	re, err := rotating.Reseal(s, ad)
	if err != nil {
		t.Fatal(err)
	}
	if re.KeyID != seal.KeyID(newKeyBytes) {
		t.Fatalf("resealed under %s, want the new key", re.KeyID)
	}
	newOnly := apptest.Keyring(t, newKeyBytes)
	if got, err := newOnly.Open(re, ad); err != nil || string(got) != "v1" {
		t.Fatalf("resealed value without the old key: %q, %v", got, err)
	}
	if _, err := newOnly.Open(s, ad); !errors.Is(err, seal.ErrUnknownKey) {
		t.Fatalf("old value after the old key is dropped: %v, want ErrUnknownKey", err)
	}
}

func TestParseKey(t *testing.T) {
	t.Parallel()
	raw := apptest.Key(t)
	tests := []struct {
		name    string
		in      string
		wantErr string
	}{
		{"standard base64", base64.StdEncoding.EncodeToString(raw), ""},
		{"url base64 without padding", base64.RawURLEncoding.EncodeToString(raw), ""},
		{"surrounding whitespace", "  " + base64.StdEncoding.EncodeToString(raw) + "\n", ""},
		{"missing", "", "secret key is empty"},
		{"short", base64.StdEncoding.EncodeToString(raw[:16]), "is 16 bytes, want 32"},
		{"long", base64.StdEncoding.EncodeToString(append(raw, 1)), "is 33 bytes, want 32"},
		{"not base64", "this is not base64!", "not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key, err := seal.ParseKey(tt.in)
			if tt.wantErr == "" {
				if err != nil || !bytes.Equal(key, raw) {
					t.Fatalf("ParseKey = %x, %v", key, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("ParseKey error = %v, want it to contain %q", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), "openssl rand -base64 32") {
				t.Fatalf("error %q does not say how to make a key", err)
			}
		})
	}
}

func TestNewKeyring_RefusesWrongLength(t *testing.T) {
	t.Parallel()
	if _, err := seal.NewKeyring(make([]byte, 16)); err == nil {
		t.Fatal("a 16-byte master key was accepted")
	}
}
