package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stagely/stagely/webhook"
)

// GitHub's documented test values for validating deliveries
// (docs.github.com/webhooks/using-webhooks/validating-webhook-deliveries).
func TestVerify_GitHubDocumentedVectorAccepted(t *testing.T) {
	t.Parallel()
	secret := []byte("It's a Secret to Everybody")
	body := []byte("Hello, World!")
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

	if err := webhook.Verify(secret, body, want); err != nil {
		t.Fatalf("Verify: %v", err)
	}
	if got := webhook.Sign(secret, body); got != want {
		t.Fatalf("Sign = %s, want %s", got, want)
	}
}

func TestVerify_RejectsBadSignatures(t *testing.T) {
	t.Parallel()
	body := []byte(`{"zen":"Design for failure."}`)
	good := sign(testSecret, body)
	hexPart := strings.TrimPrefix(good, "sha256=")

	tests := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   error
	}{
		{"MissingHeader", testSecret, body, "", webhook.ErrSignatureMissing},
		{"SHA1ValueInSHA256Header", testSecret, body, "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6", webhook.ErrSignatureMalformed},
		{"NoPrefix", testSecret, body, hexPart, webhook.ErrSignatureMalformed},
		{"UpperCasePrefix", testSecret, body, "SHA256=" + hexPart, webhook.ErrSignatureMalformed},
		{"HexTooShort", testSecret, body, good[:len(good)-2], webhook.ErrSignatureMalformed},
		{"HexTooLong", testSecret, body, good + "00", webhook.ErrSignatureMalformed},
		{"NotHex", testSecret, body, "sha256=" + strings.Repeat("zz", 32), webhook.ErrSignatureMalformed},
		{"WrongSecret", []byte("another-secret"), body, good, webhook.ErrSignatureMismatch},
		{"BodyChangedByOneByte", testSecret, append([]byte(`{"zen":"Design for failurE."`), '}'), good, webhook.ErrSignatureMismatch},
		{"BodyTruncated", testSecret, body[:len(body)-1], good, webhook.ErrSignatureMismatch},
		{"EmptySecret", nil, body, sign(nil, body), webhook.ErrSecretEmpty},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := webhook.Verify(tt.secret, tt.body, tt.header)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify error = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestVerify_SignatureErrorsAreUnauthorized(t *testing.T) {
	t.Parallel()
	for _, err := range []error{
		webhook.ErrSignatureMissing, webhook.ErrSignatureSHA1Only,
		webhook.ErrSignatureMalformed, webhook.ErrSignatureMismatch,
	} {
		if got := webhook.KindOf(err); got != webhook.KindUnauthorized {
			t.Errorf("KindOf(%v) = %s, want unauthorized", err, got)
		}
	}
	if got := webhook.KindOf(webhook.ErrSecretEmpty); got != webhook.KindMisconfigured {
		t.Errorf("KindOf(ErrSecretEmpty) = %s, want misconfigured", got)
	}
	if got := webhook.KindOf(errors.New("elsewhere")); got != webhook.KindUnknown {
		t.Errorf("KindOf(foreign error) = %s, want unknown", got)
	}
}
