package webhook_test

import (
	"errors"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/stagely/stagely/webhook"
)

// countingBody counts the bytes read from a body that never ends, as a sender trickling
// a 25 MiB body would.
type countingBody struct{ n atomic.Int64 }

func (b *countingBody) Read(p []byte) (int, error) {
	b.n.Add(int64(len(p)))
	return len(p), nil
}

func (b *countingBody) Close() error { return nil }

// TestReadDelivery_RefusesAMalformedSignatureBeforeReadingTheBody: a request whose signature
// header cannot be a signature is not GitHub's, so not one byte of its body is read. Before,
// the whole body (up to 25 MiB) was read first and the signature judged after.
func TestReadDelivery_RefusesAMalformedSignatureBeforeReadingTheBody(t *testing.T) {
	t.Parallel()
	for _, sig := range []string{
		"junk",
		"sha256=",
		"sha256=" + strings.Repeat("z", 64),
		"sha256=" + strings.Repeat("0", 63),
		"sha256=" + strings.Repeat("0", 65),
		"SHA256=" + strings.Repeat("0", 64),
		"sha1=" + strings.Repeat("0", 40),
	} {
		t.Run(sig, func(t *testing.T) {
			t.Parallel()
			r := deliveryRequest("push", testDeliveryID, pingBody)
			body := &countingBody{}
			r.Body, r.ContentLength = body, -1
			r.Header.Set("X-Hub-Signature-256", sig)
			_, err := webhook.ReadDelivery(r, testSecret, 0)
			if !errors.Is(err, webhook.ErrSignatureMalformed) || webhook.KindOf(err) != webhook.KindUnauthorized {
				t.Fatalf("ReadDelivery = %v, want ErrSignatureMalformed", err)
			}
			if n := body.n.Load(); n != 0 {
				t.Fatalf("read %d bytes of the body before refusing the signature", n)
			}
		})
	}
}
