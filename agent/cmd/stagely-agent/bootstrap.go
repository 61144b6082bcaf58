package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stagely/stagely/agent/atomicfile"
	"github.com/stagely/stagely/agent/protocol"
)

// bootstrapPrefix starts the single-use token the dashboard shows; the agent trades it for
// its long-lived token (tokenPrefix) at its first start.
const bootstrapPrefix = "stgb_"

// bootstrapPath is where the server trades a bootstrap token for a long-lived one.
const bootstrapPath = "/agent/bootstrap"

// isBootstrap reports whether token is a bootstrap token.
func isBootstrap(token string) bool { return strings.HasPrefix(token, bootstrapPrefix) }

// errBootstrapRefused is a refusal a retry cannot fix: a used, expired or unknown token.
var errBootstrapRefused = errors.New("bootstrap token refused")

// exchanger trades a bootstrap token for the agent's long-lived token and stores it.
type exchanger struct {
	client     *http.Client
	log        *slog.Logger
	configPath string
	// firstWait is the pause after the first failed attempt; it doubles up to maxWait.
	firstWait, maxWait time.Duration
}

// exchange asks the server for the long-lived token, retrying while the server cannot be
// reached or is busy, and writes it to the config file before returning it: a token the
// server handed out but the agent lost would leave the agent with nothing (the bootstrap
// token works once). Before the first attempt it keeps an exchange key in the config file
// and sends it with every attempt: an answer lost on the way is asked for again with the
// same key, which the server honours for a while (docs/agents.md, "Bootstrap tokens"), even
// after a restart of the agent.
func (x exchanger) exchange(ctx context.Context, serverURL, bootstrap string) (string, error) {
	key, err := x.exchangeKey(bootstrap)
	if err != nil {
		return "", fmt.Errorf("a bootstrap token needs a writable %s to keep the agent's token in: %w", x.configPath, err)
	}
	endpoint := strings.TrimRight(serverURL, "/") + bootstrapPath
	wait := x.firstWait
	for attempt := 1; ; attempt++ {
		token, retryAfter, err := x.ask(ctx, endpoint, bootstrap, key)
		if err == nil {
			if err := writeConfigToken(x.configPath, serverURL, bootstrap, token); err != nil {
				return "", err
			}
			x.log.Info("bootstrap token exchanged; the agent's own token is in the config file", "config", x.configPath)
			return token, nil
		}
		if errors.Is(err, errBootstrapRefused) {
			return "", err
		}
		if retryAfter > 0 {
			wait = retryAfter
		}
		x.log.Warn("bootstrap exchange failed; retrying", "attempt", attempt, "retry_in", wait, "err", err)
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("exchange bootstrap token: %w", ctx.Err())
		case <-time.After(wait):
		}
		wait = min(2*wait, x.maxWait)
	}
}

// pendingExchange is the exchange key kept in the config file until the exchange of the
// bootstrap token whose SHA-256 it names is done.
type pendingExchange struct {
	BootstrapSHA256 string `json:"bootstrap_sha256"`
	Key             string `json:"key"`
}

// exchangeKey returns the exchange key of this bootstrap token kept in the config file, or
// draws one and keeps it there first.
func (x exchanger) exchangeKey(bootstrap string) (string, error) {
	doc, err := readConfigDoc(x.configPath)
	if err != nil {
		return "", err
	}
	var pending pendingExchange
	if raw, ok := doc["exchange"]; ok && json.Unmarshal(raw, &pending) == nil &&
		pending.BootstrapSHA256 == sha256Hex(bootstrap) && len(pending.Key) == protocol.BootstrapKeyLen {
		return pending.Key, nil
	}
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("draw an exchange key: %w", err)
	}
	pending = pendingExchange{BootstrapSHA256: sha256Hex(bootstrap), Key: base64.RawURLEncoding.EncodeToString(b)}
	doc["exchange"], _ = json.Marshal(pending)
	return pending.Key, writeConfigDoc(x.configPath, doc)
}

// ask makes one attempt; retryAfter is the server's Retry-After, if any.
func (x exchanger) ask(ctx context.Context, endpoint, bootstrap, key string) (string, time.Duration, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint, nil)
	if err != nil {
		return "", 0, fmt.Errorf("%w: server URL: %w", errBootstrapRefused, err)
	}
	req.Header.Set("Authorization", "Bearer "+bootstrap)
	req.Header.Set(protocol.BootstrapKeyHeader, key)
	resp, err := x.client.Do(req)
	if err != nil {
		return "", 0, fmt.Errorf("POST %s: %w", endpoint, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", 0, fmt.Errorf("read answer of POST %s: %w", endpoint, err)
	}
	var answer struct {
		Token   string `json:"token"`
		Message string `json:"message"`
	}
	_ = json.Unmarshal(body, &answer)
	switch {
	case resp.StatusCode == http.StatusOK && strings.HasPrefix(answer.Token, tokenPrefix):
		return answer.Token, 0, nil
	case resp.StatusCode == http.StatusOK:
		return "", 0, fmt.Errorf("POST %s: the answer holds no agent token", endpoint)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		secs, _ := strconv.Atoi(resp.Header.Get("Retry-After"))
		return "", time.Duration(secs) * time.Second, fmt.Errorf("POST %s: %s %s", endpoint, resp.Status, answer.Message)
	case resp.StatusCode == http.StatusNotFound:
		return "", 0, fmt.Errorf("%w: the server at %s does not take bootstrap tokens (%s): upgrade it", errBootstrapRefused, endpoint, resp.Status)
	default:
		return "", 0, fmt.Errorf("%w: %s: %s", errBootstrapRefused, resp.Status, answer.Message)
	}
}

// writeConfigToken replaces the config file with its old content, the new token and the
// SHA-256 of the bootstrap token it replaces (so install.sh, run again with the same command
// to upgrade, keeps the file), without the exchange key, whose work is done.
func writeConfigToken(path, serverURL, bootstrap, token string) error {
	doc, err := readConfigDoc(path)
	if err != nil {
		return err
	}
	if _, ok := doc["server_url"]; !ok {
		doc["server_url"], _ = json.Marshal(serverURL)
	}
	doc["token"], _ = json.Marshal(token)
	doc["bootstrap_sha256"], _ = json.Marshal(sha256Hex(bootstrap))
	delete(doc, "exchange")
	return writeConfigDoc(path, doc)
}

// readConfigDoc reads the config file as a JSON object; a missing file is an empty one.
func readConfigDoc(path string) (map[string]json.RawMessage, error) {
	doc := map[string]json.RawMessage{}
	b, err := os.ReadFile(path)
	switch {
	case err == nil:
		if err := json.Unmarshal(b, &doc); err != nil {
			return nil, fmt.Errorf("parse config %s: %w", path, err)
		}
	case !errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("read config: %w", err)
	}
	return doc, nil
}

// writeConfigDoc replaces the config file atomically: a crash leaves the old file or the new
// one, never half of one. The file is 0600, as it holds the credential.
func writeConfigDoc(path string, doc map[string]json.RawMessage) error {
	out, err := json.Marshal(doc)
	if err != nil {
		return fmt.Errorf("encode config: %w", err)
	}
	if err := atomicfile.WriteFile(path, append(out, '\n'), 0o600); err != nil {
		return fmt.Errorf("replace config: %w", err)
	}
	return nil
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}
