package webhook_test

import (
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"testing/iotest"

	"github.com/stagely/stagely/webhook"
)

const testDeliveryID = "72d3162e-cc78-11e3-81ab-4c9367dc0958"

var pingBody = []byte(`{"zen":"Keep it logically awesome.","hook_id":30}`)

func TestReadDelivery_AcceptsSignedDeliveryWithoutOptionalHeaders(t *testing.T) {
	t.Parallel()
	r := deliveryRequest("ping", testDeliveryID, pingBody)
	r.Header.Del("X-GitHub-Hook-ID")
	r.Header.Del("X-GitHub-Hook-Installation-Target-ID")
	r.Header.Del("X-GitHub-Hook-Installation-Target-Type")
	r.Header.Del("Content-Type")

	d, err := webhook.ReadDelivery(r, testSecret, 0)
	if err != nil {
		t.Fatalf("ReadDelivery: %v", err)
	}
	want := webhook.Delivery{ID: testDeliveryID, Event: "ping", Body: pingBody}
	if d.ID != want.ID || d.Event != want.Event || d.HookID != 0 || d.InstallationTargetID != 0 ||
		d.InstallationTargetType != "" || !bytes.Equal(d.Body, want.Body) {
		t.Fatalf("ReadDelivery = %+v, want %+v", d, want)
	}
}

func TestReadDelivery_RejectsBadRequestsWithTheRightKind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		secret   []byte
		maxBody  int64
		mutate   func(r *http.Request)
		wantErr  error
		wantKind webhook.Kind
	}{
		{
			name:     "SignatureMissing",
			mutate:   func(r *http.Request) { r.Header.Del("X-Hub-Signature-256") },
			wantErr:  webhook.ErrSignatureMissing,
			wantKind: webhook.KindUnauthorized,
		},
		{
			name: "SHA1SignatureOnly",
			mutate: func(r *http.Request) {
				r.Header.Del("X-Hub-Signature-256")
				r.Header.Set("X-Hub-Signature", "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6")
			},
			wantErr:  webhook.ErrSignatureSHA1Only,
			wantKind: webhook.KindUnauthorized,
		},
		{
			name:     "SignatureMalformedPrefix",
			mutate:   func(r *http.Request) { r.Header.Set("X-Hub-Signature-256", "sha512=abcd") },
			wantErr:  webhook.ErrSignatureMalformed,
			wantKind: webhook.KindUnauthorized,
		},
		{
			name:     "WrongSecret",
			secret:   []byte("not-the-secret"),
			wantErr:  webhook.ErrSignatureMismatch,
			wantKind: webhook.KindUnauthorized,
		},
		{
			name: "BodyChangedByOneByteAfterSigning",
			mutate: func(r *http.Request) {
				changed := bytes.Clone(pingBody)
				changed[len(changed)-2] = '1' // hook_id 30 -> 31
				r.Body = io.NopCloser(bytes.NewReader(changed))
			},
			wantErr:  webhook.ErrSignatureMismatch,
			wantKind: webhook.KindUnauthorized,
		},
		{
			name:     "EventHeaderMissing",
			mutate:   func(r *http.Request) { r.Header.Del("X-GitHub-Event") },
			wantErr:  webhook.ErrHeaderMissing,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "EventHeaderNotAnEventName",
			mutate:   func(r *http.Request) { r.Header.Set("X-GitHub-Event", "Push; drop table") },
			wantErr:  webhook.ErrHeaderMalformed,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "DeliveryHeaderMissing",
			mutate:   func(r *http.Request) { r.Header.Del("X-GitHub-Delivery") },
			wantErr:  webhook.ErrHeaderMissing,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "DeliveryHeaderNotAGUID",
			mutate:   func(r *http.Request) { r.Header.Set("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc095g") },
			wantErr:  webhook.ErrHeaderMalformed,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "HookIDNotNumeric",
			mutate:   func(r *http.Request) { r.Header.Set("X-GitHub-Hook-ID", "abc") },
			wantErr:  webhook.ErrHeaderMalformed,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "TargetIDNotNumeric",
			mutate:   func(r *http.Request) { r.Header.Set("X-GitHub-Hook-Installation-Target-ID", "-1") },
			wantErr:  webhook.ErrHeaderMalformed,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "OversizedWithContentLength",
			maxBody:  int64(len(pingBody)) - 1,
			wantErr:  webhook.ErrBodyTooLarge,
			wantKind: webhook.KindTooLarge,
		},
		{
			name:    "OversizedWithoutContentLength",
			maxBody: int64(len(pingBody)) - 1,
			mutate: func(r *http.Request) {
				r.ContentLength = -1
				r.Body = io.NopCloser(io.MultiReader(bytes.NewReader(pingBody)))
			},
			wantErr:  webhook.ErrBodyTooLarge,
			wantKind: webhook.KindTooLarge,
		},
		{
			name: "OversizedForTheRoutersMaxBytesReader",
			mutate: func(r *http.Request) {
				r.Body = http.MaxBytesReader(httptest.NewRecorder(), r.Body, 8)
			},
			wantErr:  webhook.ErrBodyTooLarge,
			wantKind: webhook.KindTooLarge,
		},
		{
			name: "BodyReadFails",
			mutate: func(r *http.Request) {
				r.Body = io.NopCloser(iotest.TimeoutReader(bytes.NewReader(pingBody)))
				r.ContentLength = -1
			},
			wantErr:  webhook.ErrBodyUnreadable,
			wantKind: webhook.KindInvalid,
		},
		{
			name:     "NoSecretConfigured",
			secret:   []byte{},
			wantErr:  webhook.ErrSecretEmpty,
			wantKind: webhook.KindMisconfigured,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := deliveryRequest("ping", testDeliveryID, pingBody)
			if tt.mutate != nil {
				tt.mutate(r)
			}
			secret := testSecret
			if tt.secret != nil {
				secret = tt.secret
			}
			_, err := webhook.ReadDelivery(r, secret, tt.maxBody)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ReadDelivery error = %v, want %v", err, tt.wantErr)
			}
			if got := webhook.KindOf(err); got != tt.wantKind {
				t.Fatalf("KindOf = %s, want %s", got, tt.wantKind)
			}
		})
	}
}

func TestReadDelivery_BodyExactlyAtLimitAccepted(t *testing.T) {
	t.Parallel()
	r := deliveryRequest("ping", testDeliveryID, pingBody)
	if _, err := webhook.ReadDelivery(r, testSecret, int64(len(pingBody))); err != nil {
		t.Fatalf("ReadDelivery: %v", err)
	}
}

func TestReadDelivery_DefaultLimitIsGitHubs25MB(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{'x'}, int(webhook.DefaultMaxBody)+1)

	atLimit := deliveryRequest("ping", testDeliveryID, big[:webhook.DefaultMaxBody])
	if _, err := webhook.ReadDelivery(atLimit, testSecret, 0); err != nil {
		t.Fatalf("ReadDelivery of a %d-byte body: %v", webhook.DefaultMaxBody, err)
	}
	over := deliveryRequest("ping", testDeliveryID, big)
	over.ContentLength = -1 // make ReadDelivery count rather than trust the header
	if _, err := webhook.ReadDelivery(over, testSecret, 0); !errors.Is(err, webhook.ErrBodyTooLarge) {
		t.Fatalf("ReadDelivery of a %d-byte body: error = %v, want ErrBodyTooLarge", len(big), err)
	}
}

func TestReadDelivery_FormEncodedPayloadVerifiedOverRawBody(t *testing.T) {
	t.Parallel()
	raw := []byte(url.Values{"payload": {string(pingBody)}}.Encode())
	r := deliveryRequest("ping", testDeliveryID, raw)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	d, err := webhook.ReadDelivery(r, testSecret, 0)
	if err != nil {
		t.Fatalf("ReadDelivery: %v", err)
	}
	if !bytes.Equal(d.Body, pingBody) {
		t.Fatalf("Body = %s, want the form's payload field %s", d.Body, pingBody)
	}

	// A signature over the JSON alone is not a signature over what was sent.
	forged := deliveryRequest("ping", testDeliveryID, raw)
	forged.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	forged.Header.Set("X-Hub-Signature-256", sign(testSecret, pingBody))
	if _, err := webhook.ReadDelivery(forged, testSecret, 0); !errors.Is(err, webhook.ErrSignatureMismatch) {
		t.Fatalf("ReadDelivery with the JSON's signature: error = %v, want ErrSignatureMismatch", err)
	}
}

func TestReadDelivery_FormEncodedWithoutPayloadIsInvalid(t *testing.T) {
	t.Parallel()
	raw := []byte("other=1")
	r := deliveryRequest("ping", testDeliveryID, raw)
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	_, err := webhook.ReadDelivery(r, testSecret, 0)
	if !errors.Is(err, webhook.ErrPayloadMalformed) || webhook.KindOf(err) != webhook.KindInvalid {
		t.Fatalf("ReadDelivery error = %v (kind %s), want ErrPayloadMalformed (invalid)", err, webhook.KindOf(err))
	}
}
