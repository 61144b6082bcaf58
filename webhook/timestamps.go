package webhook

import (
	"bytes"
	"encoding/json"
	"strings"
	"time"
)

// normaliseTimes rewrites every "*_at" string in a legacy layout to RFC 3339 (UTC
// when the layout has no zone). It reports whether anything changed, so callers
// retry parsing only when a retry can succeed.
func normaliseTimes(body []byte) ([]byte, bool) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // keeps 64-bit ids exact through the round trip
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, false
	}
	if !rewriteTimes(v) {
		return nil, false
	}
	out, err := json.Marshal(v)
	if err != nil {
		return nil, false
	}
	return out, true
}

func rewriteTimes(v any) bool {
	changed := false
	switch t := v.(type) {
	case map[string]any:
		for key, val := range t {
			if s, ok := val.(string); ok && strings.HasSuffix(key, "_at") {
				if fixed, ok := legacyTime(s); ok {
					t[key] = fixed
					changed = true
				}
				continue
			}
			if rewriteTimes(val) {
				changed = true
			}
		}
	case []any:
		for _, val := range t {
			if rewriteTimes(val) {
				changed = true
			}
		}
	}
	return changed
}

// legacyTime converts a timestamp in a layout found in GitHub payloads that go-github's
// Timestamp (RFC 3339 or Unix seconds only) rejects. GitHub's own published check_run
// "rerequested" example carries app.created_at as "2018-04-25 20:42:10"; one such
// field we never read must not make a whole delivery undecodable.
func legacyTime(s string) (string, bool) {
	layouts := [...]string{
		"2006-01-02 15:04:05",
		"2006-01-02 15:04:05 -0700",
		"2006-01-02 15:04:05 MST",
	}
	for _, layout := range layouts {
		if at, err := time.Parse(layout, s); err == nil {
			return at.Format(time.RFC3339), true
		}
	}
	return "", false
}
