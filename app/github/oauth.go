package github

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// maxAnswerBytes bounds what we read of an answer we decode by hand (OAuth tokens, errors).
const maxAnswerBytes = 1 << 20

// OAuthClient is the App's OAuth client: the id and secret from its settings page.
type OAuthClient struct {
	ID     string
	Secret string
}

// UserToken is a user access token and what GitHub said of its life. GitHub App user tokens
// expire (8 hours) and come with a refresh token (6 months); ExpiresIn is zero when token
// expiry is turned off for the App.
type UserToken struct {
	AccessToken  string
	ExpiresIn    time.Duration
	RefreshToken string
	// RefreshTokenExpiresIn is zero when GitHub named no limit.
	RefreshTokenExpiresIn time.Duration
}

// String never shows the tokens, so a UserToken printed by mistake leaks nothing.
func (t UserToken) String() string {
	return fmt.Sprintf("[redacted user token, expires in %s]", t.ExpiresIn)
}

// GoString keeps %#v as safe as %v.
func (t UserToken) GoString() string { return t.String() }

// OAuthError is GitHub's refusal of a code or refresh token, which it sends with HTTP 200;
// Code is GitHub's error, e.g. bad_verification_code or incorrect_client_credentials.
type OAuthError struct {
	Code        string
	Description string
}

func (e *OAuthError) Error() string {
	return fmt.Sprintf("GitHub refused: %s (%s)", e.Code, e.Description)
}

// AuthorizeURL is GitHub's page that asks the user to authorize the App and then sends them to
// redirectURI with a code and state.
func (c *Client) AuthorizeURL(clientID, redirectURI, state string) string {
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirectURI}, "state": {state}}
	return c.webURL + "/login/oauth/authorize?" + q.Encode()
}

// ExchangeCode trades the code GitHub sent to redirectURI for a user token. A code GitHub
// refuses (used, expired, wrong client) is an *OAuthError.
func (c *Client) ExchangeCode(ctx context.Context, oc OAuthClient, code, redirectURI string) (UserToken, error) {
	return c.userToken(ctx, oc, url.Values{"code": {code}, "redirect_uri": {redirectURI}})
}

// RefreshUserToken renews an expired user token with its refresh token, which works once.
func (c *Client) RefreshUserToken(ctx context.Context, oc OAuthClient, refreshToken string) (UserToken, error) {
	tok, err := c.userToken(ctx, oc, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}})
	if err != nil {
		return UserToken{}, fmt.Errorf("renew GitHub user token: %w", err)
	}
	return tok, nil
}

// tokenAnswer is GitHub's answer at /login/oauth/access_token with Accept: application/json.
type tokenAnswer struct {
	AccessToken           string `json:"access_token"`
	ExpiresIn             int64  `json:"expires_in"`
	RefreshToken          string `json:"refresh_token"`
	RefreshTokenExpiresIn int64  `json:"refresh_token_expires_in"`
	Error                 string `json:"error"`
	ErrorDescription      string `json:"error_description"`
}

// userToken posts params (a code, or a refresh token) with the client credentials.
func (c *Client) userToken(ctx context.Context, oc OAuthClient, params url.Values) (UserToken, error) {
	params.Set("client_id", oc.ID)
	params.Set("client_secret", oc.Secret)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.webURL+"/login/oauth/access_token", strings.NewReader(params.Encode()))
	if err != nil {
		return UserToken{}, fmt.Errorf("build token request: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", userAgent)
	resp, err := (&http.Client{Transport: c.wire, Timeout: c.timeout}).Do(req)
	if err != nil {
		return UserToken{}, fmt.Errorf("post to GitHub's token endpoint: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return UserToken{}, fmt.Errorf("post to GitHub's token endpoint: %w", answerError(resp))
	}
	var ta tokenAnswer
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxAnswerBytes)).Decode(&ta); err != nil {
		return UserToken{}, fmt.Errorf("decode GitHub's token answer: %w", err)
	}
	if ta.Error != "" {
		return UserToken{}, &OAuthError{Code: ta.Error, Description: ta.ErrorDescription}
	}
	if ta.AccessToken == "" {
		return UserToken{}, errors.New("GitHub's token answer holds no access_token")
	}
	return UserToken{
		AccessToken: ta.AccessToken, ExpiresIn: time.Duration(ta.ExpiresIn) * time.Second,
		RefreshToken: ta.RefreshToken, RefreshTokenExpiresIn: time.Duration(ta.RefreshTokenExpiresIn) * time.Second,
	}, nil
}
