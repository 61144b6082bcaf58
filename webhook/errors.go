package webhook

import "errors"

// Kind classifies an error from this package so a caller can choose a response.
type Kind int

const (
	// KindUnknown marks an error that did not come from this package; treat it as a server fault.
	KindUnknown Kind = iota
	// KindUnauthorized means the signature is missing, malformed or wrong: the sender is not GitHub.
	KindUnauthorized
	// KindInvalid means a required header or the payload is missing or malformed.
	KindInvalid
	// KindTooLarge means the body exceeds the configured limit.
	KindTooLarge
	// KindMisconfigured means the server has no webhook secret, so nothing can be trusted.
	KindMisconfigured
)

// String names the kind for logs.
func (k Kind) String() string {
	switch k {
	case KindUnauthorized:
		return "unauthorized"
	case KindInvalid:
		return "invalid"
	case KindTooLarge:
		return "too_large"
	case KindMisconfigured:
		return "misconfigured"
	default:
		return "unknown"
	}
}

// kindError is the type of every sentinel below; wrapping one with %w keeps both
// errors.Is against the sentinel and KindOf working.
type kindError struct {
	kind Kind
	msg  string
}

func (e *kindError) Error() string { return e.msg }

// Sentinel errors; match them with errors.Is and classify any of them with KindOf.
var (
	// ErrSecretEmpty is returned when Verify is given no secret: an empty HMAC key is one anybody can use.
	ErrSecretEmpty error = &kindError{KindMisconfigured, "webhook secret is empty"}
	// ErrSignatureMissing is returned when no X-Hub-Signature-256 header was sent.
	ErrSignatureMissing error = &kindError{KindUnauthorized, "signature header X-Hub-Signature-256 missing"}
	// ErrSignatureSHA1Only is returned when only the legacy SHA-1 X-Hub-Signature header was sent.
	ErrSignatureSHA1Only error = &kindError{KindUnauthorized, "only the SHA-1 X-Hub-Signature header was sent; X-Hub-Signature-256 is required"}
	// ErrSignatureMalformed is returned when the header is not "sha256=" followed by 64 hex digits.
	ErrSignatureMalformed error = &kindError{KindUnauthorized, "signature header malformed"}
	// ErrSignatureMismatch is returned when the signature does not match the body and secret.
	ErrSignatureMismatch error = &kindError{KindUnauthorized, "signature does not match the body"}
	// ErrHeaderMissing is returned when X-GitHub-Event or X-GitHub-Delivery is absent.
	ErrHeaderMissing error = &kindError{KindInvalid, "required delivery header missing"}
	// ErrHeaderMalformed is returned when a delivery header is present but not in GitHub's format.
	ErrHeaderMalformed error = &kindError{KindInvalid, "delivery header malformed"}
	// ErrBodyTooLarge is returned when the body is longer than the limit given to ReadDelivery.
	ErrBodyTooLarge error = &kindError{KindTooLarge, "body too large"}
	// ErrBodyUnreadable is returned when reading the body fails part way.
	ErrBodyUnreadable error = &kindError{KindInvalid, "body unreadable"}
	// ErrPayloadMalformed is returned when the payload is not the JSON its event requires.
	ErrPayloadMalformed error = &kindError{KindInvalid, "payload malformed"}
)

// KindOf reports the Kind of err, or KindUnknown when err did not come from this package.
func KindOf(err error) Kind {
	var ke *kindError
	if errors.As(err, &ke) {
		return ke.kind
	}
	return KindUnknown
}
