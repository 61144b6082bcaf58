package webhook

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
)

// DefaultMaxBody is GitHub's documented payload cap (25 MB). GitHub does not send
// larger payloads, so anything bigger is not a genuine delivery. It is counted in
// MiB, the larger reading of "MB", so no genuine delivery is refused.
const DefaultMaxBody int64 = 25 << 20

// Delivery is one authenticated webhook request, before its payload is decoded.
type Delivery struct {
	// ID is the X-GitHub-Delivery GUID; a redelivery repeats it.
	ID string
	// Event is the X-GitHub-Event name, e.g. "push".
	Event string
	// HookID is X-GitHub-Hook-ID, or 0 when not sent.
	HookID int64
	// InstallationTargetID is X-GitHub-Hook-Installation-Target-ID, or 0 when not sent.
	InstallationTargetID int64
	// InstallationTargetType is X-GitHub-Hook-Installation-Target-Type, e.g. "integration".
	InstallationTargetType string
	// Body is the JSON payload; for a form-encoded delivery it is the "payload" field.
	Body []byte
}

// ReadDelivery reads at most maxBody bytes of r's body (DefaultMaxBody when maxBody <= 0),
// verifies X-Hub-Signature-256 over the raw bytes with secret and checks the delivery
// headers. Every error carries a Kind (see KindOf).
func ReadDelivery(r *http.Request, secret []byte, maxBody int64) (Delivery, error) {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	if len(secret) == 0 {
		return Delivery{}, ErrSecretEmpty
	}
	if err := CheckBeforeBody(r, maxBody); err != nil {
		return Delivery{}, err
	}
	raw, err := readLimited(r.Body, maxBody)
	if err != nil {
		return Delivery{}, err
	}
	if err := Verify(secret, raw, r.Header.Get(HeaderSignature256)); err != nil {
		return Delivery{}, fmt.Errorf("verify delivery: %w", err)
	}

	d := Delivery{
		ID:                     r.Header.Get(HeaderDelivery),
		Event:                  r.Header.Get(HeaderEvent),
		InstallationTargetType: r.Header.Get(HeaderTargetType),
	}
	if d.Event == "" {
		return Delivery{}, fmt.Errorf("%w: %s", ErrHeaderMissing, HeaderEvent)
	}
	if !isEventName(d.Event) {
		return Delivery{}, fmt.Errorf("%w: %s is not an event name", ErrHeaderMalformed, HeaderEvent)
	}
	if d.ID == "" {
		return Delivery{}, fmt.Errorf("%w: %s", ErrHeaderMissing, HeaderDelivery)
	}
	if !isGUID(d.ID) {
		return Delivery{}, fmt.Errorf("%w: %s is not a GUID", ErrHeaderMalformed, HeaderDelivery)
	}
	if d.HookID, err = optionalID(r.Header, HeaderHookID); err != nil {
		return Delivery{}, err
	}
	if d.InstallationTargetID, err = optionalID(r.Header, HeaderTargetID); err != nil {
		return Delivery{}, err
	}
	if d.Body, err = payloadOf(r.Header.Get("Content-Type"), raw); err != nil {
		return Delivery{}, err
	}
	return d, nil
}

// CheckBeforeBody makes the checks that need no body: a signature header that is "sha256=" and
// 64 hex digits, and a Content-Length within maxBody (DefaultMaxBody when maxBody <= 0). A
// request that fails them is not GitHub's, so none of its body needs reading. ReadDelivery
// makes them first; a caller may make them earlier, before it spends anything on the body.
func CheckBeforeBody(r *http.Request, maxBody int64) error {
	if maxBody <= 0 {
		maxBody = DefaultMaxBody
	}
	signature := r.Header.Get(HeaderSignature256)
	if signature == "" {
		if r.Header.Get(HeaderSignatureSHA1) != "" {
			return ErrSignatureSHA1Only
		}
		return ErrSignatureMissing
	}
	if _, err := parseSignature(signature); err != nil {
		return fmt.Errorf("verify delivery: %w", err)
	}
	if r.ContentLength > maxBody {
		return fmt.Errorf("%w: Content-Length %d exceeds %d bytes", ErrBodyTooLarge, r.ContentLength, maxBody)
	}
	return nil
}

// readLimited reads body up to limit bytes and reports ErrBodyTooLarge past it,
// whether or not the sender declared a Content-Length.
func readLimited(body io.Reader, limit int64) ([]byte, error) {
	if body == nil {
		return nil, nil
	}
	raw, err := io.ReadAll(io.LimitReader(body, limit+1))
	if err != nil {
		// A router may already have wrapped the body in http.MaxBytesReader.
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, fmt.Errorf("%w: exceeds %d bytes", ErrBodyTooLarge, tooBig.Limit)
		}
		return nil, fmt.Errorf("%w: %w", ErrBodyUnreadable, err)
	}
	if int64(len(raw)) > limit {
		return nil, fmt.Errorf("%w: exceeds %d bytes", ErrBodyTooLarge, limit)
	}
	return raw, nil
}

// payloadOf returns the JSON payload: the raw body, or its "payload" field when the
// webhook was configured for application/x-www-form-urlencoded. The signature always
// covers the raw body, so this runs after Verify.
func payloadOf(contentType string, raw []byte) ([]byte, error) {
	if contentType == "" {
		return raw, nil
	}
	mediaType, _, err := mime.ParseMediaType(contentType)
	if err != nil || mediaType != "application/x-www-form-urlencoded" {
		return raw, nil
	}
	form, err := url.ParseQuery(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%w: form body: %w", ErrPayloadMalformed, err)
	}
	payload := form.Get("payload")
	if payload == "" {
		return nil, fmt.Errorf("%w: form body has no payload field", ErrPayloadMalformed)
	}
	return []byte(payload), nil
}

func optionalID(h http.Header, name string) (int64, error) {
	v := h.Get(name)
	if v == "" {
		return 0, nil
	}
	id, err := strconv.ParseInt(v, 10, 64)
	if err != nil || id < 0 {
		return 0, fmt.Errorf("%w: %s is not a numeric id", ErrHeaderMalformed, name)
	}
	return id, nil
}

// isEventName accepts GitHub's event names (lower case and underscores) so that
// nothing else reaches logs or the database as an event name.
func isEventName(s string) bool {
	if len(s) == 0 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 'a' || c > 'z') && c != '_' {
			return false
		}
	}
	return true
}

// isGUID accepts the 8-4-4-4-12 hex form GitHub uses for X-GitHub-Delivery.
func isGUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !isHex(c) {
				return false
			}
		}
	}
	return true
}

func isHex(c byte) bool {
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F')
}
