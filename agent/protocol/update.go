package protocol

import (
	"fmt"
	"slices"
)

// FeatureSelfUpdate in HELLO's features says the agent applies UPDATE; the server offers
// updates only to agents that say so (older ones would close on an unknown frame).
const FeatureSelfUpdate = "self_update"

// Self-update, when the server serves a build other than the agent's and the agent is idle:
//
//	server -> agent  UPDATE        {version, platform, sha256, path}
//	agent  -> server UPDATE_FAILED {version, error}   (only when it did not apply it)
//
// On success the agent closes the connection, re-executes the new binary and connects with
// a HELLO carrying the new version; that HELLO is the success report.

// Update offers the agent the build at Path on the server (GET, no token needed).
type Update struct {
	// Version is what the new binary's --version reports after "stagely-agent ".
	Version string `json:"version"`
	// Platform is the build's platform, the agent's own (HELLO's platform).
	Platform string `json:"platform"`
	// SHA256 is the hex SHA-256 of the binary; the agent refuses a download that differs.
	SHA256 string `json:"sha256"`
	// Path is the download's path on the server, like /agent/download/linux/amd64.
	Path string `json:"path"`
}

// UpdateFailed tells the server why an offered update was not applied; the agent keeps
// running the build it had.
type UpdateFailed struct {
	Version string `json:"version"`
	Error   string `json:"error"`
}

// Clip bounds the version and error text; it reports whether it had to.
func (u *UpdateFailed) Clip() bool {
	before := len(u.Version) + len(u.Error)
	u.Version = Truncate(u.Version, MaxHelloFieldBytes)
	u.Error = Truncate(u.Error, MaxErrorBytes)
	return len(u.Version)+len(u.Error) != before
}

// HasFeature reports whether HELLO lists the feature.
func (h *Hello) HasFeature(f string) bool { return slices.Contains(h.Features, f) }

// validUpdate checks an UPDATE as the agent receives it: it names a file to download and
// a checksum to hold it to, so nothing in it may be loose.
func validUpdate(u *Update) error {
	if u.Version == "" || len(u.Version) > MaxHelloFieldBytes || !printable(u.Version) {
		return fmt.Errorf("%s: UPDATE version missing, over %d bytes or not printable", CloseReasonBadFrame, MaxHelloFieldBytes)
	}
	if len(u.Platform) > MaxHelloFieldBytes || !printable(u.Platform) {
		return fmt.Errorf("%s: UPDATE platform over %d bytes or not printable", CloseReasonBadFrame, MaxHelloFieldBytes)
	}
	if len(u.SHA256) != 64 || !isLowerHex(u.SHA256) {
		return fmt.Errorf("%s: UPDATE sha256 is not 64 lowercase hex digits", CloseReasonBadFrame)
	}
	if len(u.Path) > MaxUpdatePathBytes || len(u.Path) < 2 || u.Path[0] != '/' || u.Path[1] == '/' || !printable(u.Path) {
		return fmt.Errorf("%s: UPDATE path must be an absolute path on the server of at most %d bytes", CloseReasonBadFrame, MaxUpdatePathBytes)
	}
	return nil
}

// printable is true when s holds only printable ASCII without spaces.
func printable(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}
