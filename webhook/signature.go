package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// Header names GitHub sets on a delivery; net/http canonicalises the case on lookup.
const (
	// HeaderSignature256 carries "sha256=<hex HMAC-SHA256 of the body>".
	HeaderSignature256 = "X-Hub-Signature-256"
	// HeaderSignatureSHA1 is the legacy SHA-1 signature, never accepted on its own.
	HeaderSignatureSHA1 = "X-Hub-Signature"
	// HeaderEvent names the event, e.g. "push".
	HeaderEvent = "X-GitHub-Event"
	// HeaderDelivery is the delivery's GUID, stable across redeliveries.
	HeaderDelivery = "X-GitHub-Delivery"
	// HeaderHookID is the numeric id of the webhook that sent the delivery.
	HeaderHookID = "X-GitHub-Hook-ID"
	// HeaderTargetID is the id of the resource the webhook belongs to (for an App, the App id).
	HeaderTargetID = "X-GitHub-Hook-Installation-Target-ID"
	// HeaderTargetType is the type of that resource, e.g. "integration" or "repository".
	HeaderTargetType = "X-GitHub-Hook-Installation-Target-Type"
)

const signaturePrefix = "sha256="

// Verify checks signatureHeader, the X-Hub-Signature-256 value, against the HMAC-SHA256
// of body keyed with secret, in constant time.
func Verify(secret []byte, body []byte, signatureHeader string) error {
	if len(secret) == 0 {
		return ErrSecretEmpty
	}
	got, err := parseSignature(signatureHeader)
	if err != nil {
		return err
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	if !hmac.Equal(got, mac.Sum(nil)) {
		return ErrSignatureMismatch
	}
	return nil
}

// parseSignature returns the MAC an X-Hub-Signature-256 value carries: "sha256=" and 64 hex
// digits, nothing else. It needs no body, so a request can be refused before its body is read.
func parseSignature(signatureHeader string) ([]byte, error) {
	if signatureHeader == "" {
		return nil, ErrSignatureMissing
	}
	hexSig, ok := strings.CutPrefix(signatureHeader, signaturePrefix)
	if !ok {
		return nil, fmt.Errorf("%w: want prefix %q", ErrSignatureMalformed, signaturePrefix)
	}
	if len(hexSig) != hex.EncodedLen(sha256.Size) {
		return nil, fmt.Errorf("%w: want %d hex digits, got %d", ErrSignatureMalformed, hex.EncodedLen(sha256.Size), len(hexSig))
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrSignatureMalformed, err)
	}
	return got, nil
}

// Sign returns the X-Hub-Signature-256 value GitHub would send for body, for
// simulators and tests that have to produce deliveries.
func Sign(secret []byte, body []byte) string {
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}
