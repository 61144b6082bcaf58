package github

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/bradleyfalzon/ghinstallation/v2"
	gh "github.com/google/go-github/v60/github"
)

// ErrNotFound matches (errors.Is) a 404 from GitHub: the file, ref or repository is not there,
// or the credential cannot see it (GitHub answers 404 for private repositories it hides).
var ErrNotFound = errors.New("not found on GitHub")

// ErrRateLimited matches (errors.Is) a call that was still rate limited when the retries ran out.
var ErrRateLimited = errors.New("rate limited by GitHub")

// ErrPermissionNotGranted matches (errors.Is) GitHub's 403 "Resource not accessible by
// integration": the installation lacks a permission the call needs, typically one the App asks
// for since it was installed and the account's owner has not accepted yet.
var ErrPermissionNotGranted = errors.New("permission not granted to the GitHub App installation")

// msgNotAccessible is GitHub's message for a call the installation's permissions do not cover.
const msgNotAccessible = "Resource not accessible by integration"

// APIError is GitHub's answer to a call that did not succeed, with GitHub's own message.
type APIError struct {
	// StatusCode is the HTTP status (422 means we sent something GitHub refuses: a bug on our side).
	StatusCode int
	// Message is GitHub's "message", e.g. "Validation Failed".
	Message string
	// Details are the messages of GitHub's "errors" entries, e.g. "description is too long (maximum is 140 characters)".
	Details []string
	// DocumentationURL is GitHub's "documentation_url".
	DocumentationURL string
	// AcceptedPermissions is GitHub's X-Accepted-GitHub-Permissions on a 403: the permission sets
	// that would do, e.g. "issues=write; pull_requests=write".
	AcceptedPermissions string
	rateLimited         bool
}

// Error reads like "422 Validation Failed: description is too long (maximum is 140 characters)".
func (e *APIError) Error() string {
	msg := fmt.Sprintf("%d %s", e.StatusCode, e.Message)
	if len(e.Details) > 0 {
		msg += ": " + strings.Join(e.Details, "; ")
	}
	if e.AcceptedPermissions != "" {
		msg += " (the call needs " + e.AcceptedPermissions + ")"
	}
	return msg
}

// Is lets errors.Is match ErrNotFound, ErrRateLimited and ErrPermissionNotGranted.
func (e *APIError) Is(target error) bool {
	switch target {
	case ErrNotFound:
		return e.StatusCode == http.StatusNotFound
	case ErrRateLimited:
		return e.rateLimited || e.StatusCode == http.StatusTooManyRequests
	case ErrPermissionNotGranted:
		return e.StatusCode == http.StatusForbidden && !e.rateLimited && e.Message == msgNotAccessible
	}
	return false
}

// apiError turns go-github's and ghinstallation's errors into ours, so that no go-github type
// leaves the package; other errors (network, context) pass through unchanged.
func apiError(err error) error {
	if err == nil {
		return nil
	}
	var er *gh.ErrorResponse
	if errors.As(err, &er) {
		out := &APIError{Message: er.Message, DocumentationURL: er.DocumentationURL}
		if er.Response != nil {
			out.StatusCode = er.Response.StatusCode
			out.AcceptedPermissions = er.Response.Header.Get("X-Accepted-GitHub-Permissions")
		}
		for _, fe := range er.Errors {
			out.Details = append(out.Details, fieldMessage(fe))
		}
		return out
	}
	var rl *gh.RateLimitError
	if errors.As(err, &rl) {
		return &APIError{StatusCode: statusOf(rl.Response, http.StatusForbidden), Message: rl.Message, rateLimited: true}
	}
	var al *gh.AbuseRateLimitError
	if errors.As(err, &al) {
		return &APIError{StatusCode: statusOf(al.Response, http.StatusForbidden), Message: al.Message, rateLimited: true}
	}
	var he *ghinstallation.HTTPError
	if errors.As(err, &he) && he.Response != nil {
		// ghinstallation leaves the body of a refused token request open for us to read and close.
		defer he.Response.Body.Close()
		return fmt.Errorf("mint installation %d token: %w", he.InstallationID, answerError(he.Response))
	}
	return err
}

// answerError reads a refusal we got without go-github's help into an APIError; the caller
// closes the body.
func answerError(resp *http.Response) *APIError {
	out := &APIError{StatusCode: resp.StatusCode, Message: http.StatusText(resp.StatusCode),
		AcceptedPermissions: resp.Header.Get("X-Accepted-GitHub-Permissions")}
	var body struct {
		Message          string `json:"message"`
		DocumentationURL string `json:"documentation_url"`
	}
	if b, err := io.ReadAll(io.LimitReader(resp.Body, peekLimit)); err == nil && json.Unmarshal(b, &body) == nil && body.Message != "" {
		out.Message, out.DocumentationURL = body.Message, body.DocumentationURL
	}
	out.rateLimited = out.StatusCode == http.StatusTooManyRequests || strings.Contains(strings.ToLower(out.Message), "rate limit")
	return out
}

func fieldMessage(fe gh.Error) string {
	if fe.Message != "" {
		return fe.Message
	}
	return strings.Trim(fmt.Sprintf("%s %s %s", fe.Resource, fe.Field, fe.Code), " ")
}

func statusOf(resp *http.Response, fallback int) int {
	if resp == nil {
		return fallback
	}
	return resp.StatusCode
}
