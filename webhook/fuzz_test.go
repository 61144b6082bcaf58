package webhook_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/stagely/stagely/webhook"
)

func FuzzVerify(f *testing.F) {
	body := []byte(`{"zen":"Design for failure."}`)
	good := sign(testSecret, body)
	f.Add(body, good)
	f.Add(body, strings.ToUpper(good[:7])+good[7:])
	f.Add(body, "sha256="+strings.ToUpper(good[7:]))
	f.Add(body, "")
	f.Add(body, "sha256=")
	f.Add(body, "sha1=7d38cdd689735b008b3c702edd92eea23791c5f6")
	f.Add(body, good[:len(good)-1])
	f.Add([]byte{}, sign(testSecret, nil))
	f.Add(body[1:], good)

	f.Fuzz(func(t *testing.T, body []byte, header string) {
		err := webhook.Verify(testSecret, body, header)
		if err == nil {
			// Only the one true MAC passes; hex digits may come in either case.
			if want := sign(testSecret, body); !strings.HasPrefix(header, "sha256=") || !strings.EqualFold(header, want) {
				t.Fatalf("Verify accepted %q for a body whose signature is %q", header, want)
			}
			return
		}
		if webhook.KindOf(err) != webhook.KindUnauthorized {
			t.Fatalf("Verify error %v has kind %s, want unauthorized", err, webhook.KindOf(err))
		}
	})
}

func FuzzDecode(f *testing.F) {
	for _, p := range conformancePayloads(f) {
		f.Add(p.Event, readFile(f, p.Path))
	}
	f.Add("push", []byte(`{"ref":"refs/heads/main","after":"a","repository":{"id":1,"full_name":"o/r"}}`))
	f.Add("push", []byte(`null`))
	f.Add("check_run", []byte(`{"action":"created","check_run":{"app":{"created_at":"2018-04-25 20:42:10"}}}`))
	f.Add("issues", []byte(`{"action":"opened"}`))
	f.Add("ping", []byte(`{"hook":{"app_id":"x"}}`))

	f.Fuzz(func(t *testing.T, event string, body []byte) {
		ev, err := webhook.Decode(event, body)
		if err != nil {
			if !errors.Is(err, webhook.ErrPayloadMalformed) || webhook.KindOf(err) != webhook.KindInvalid {
				t.Fatalf("Decode error %v is not an invalid-payload error", err)
			}
			return
		}
		if ev.EventName() != event {
			t.Fatalf("EventName() = %q, want %q", ev.EventName(), event)
		}
	})
}
