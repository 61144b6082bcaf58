// Package agenttoken mints and checks the bearer tokens agents authenticate with.
//
// A token looks like stg_<agent id>_<43 base64url characters>. The prefix lets secret
// scanners recognise it, the agent id lets the server find the one row to check without
// scanning, and the 256 random bits are the secret. Only a bcrypt hash of the secret part
// is stored.
package agenttoken

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"golang.org/x/crypto/bcrypt"
)

// Prefix starts every long-lived agent token.
const Prefix = "stg_"

// BootstrapPrefix starts every bootstrap token: the single-use, expiring token the dashboard
// shows, which the agent trades for its long-lived one at its first connection.
const BootstrapPrefix = "stgb_"

// secretBytes is the randomness in a token: 256 bits.
const secretBytes = 32

// Cost is the bcrypt cost of stored hashes.
const Cost = bcrypt.DefaultCost

// ErrMalformed is returned for a string that is not an agent token at all.
var ErrMalformed = errors.New("not a Stagely agent token (want stg_<agent id>_<secret>)")

// ErrMismatch is returned when a well-formed token does not match the stored hash.
var ErrMismatch = errors.New("agent token does not match")

// Minted is a freshly made token: Token is shown to the user once, Hash is what is stored.
type Minted struct {
	Token string
	Hash  string
}

// String keeps the token out of fmt output.
func (m Minted) String() string { return "agenttoken.Minted{Token: [redacted]}" }

// GoString keeps the token out of %#v output.
func (m Minted) GoString() string { return m.String() }

// Mint makes a new token for the agent with the given id.
func Mint(agentID int64) (Minted, error) {
	return MintCost(agentID, Cost)
}

// MintCost is Mint with the bcrypt cost chosen. Verify reads the cost from the hash, so a
// token checks the same way whatever its cost. Tests mint with bcrypt.MinCost: under the
// race detector one hash at Cost takes over a second of CPU, and a loaded machine stretches
// that past any handshake deadline.
func MintCost(agentID int64, cost int) (Minted, error) {
	return mint(Prefix, agentID, cost)
}

// MintBootstrapCost makes a bootstrap token (stgb_<agent id>_<secret>) for the agent.
func MintBootstrapCost(agentID int64, cost int) (Minted, error) {
	return mint(BootstrapPrefix, agentID, cost)
}

// IsBootstrap reports whether token has the form of a bootstrap token.
func IsBootstrap(token string) bool {
	return strings.HasPrefix(token, BootstrapPrefix)
}

func mint(prefix string, agentID int64, cost int) (Minted, error) {
	if agentID <= 0 {
		return Minted{}, fmt.Errorf("mint agent token: agent id %d is not positive", agentID)
	}
	raw := make([]byte, secretBytes)
	if _, err := rand.Read(raw); err != nil {
		return Minted{}, fmt.Errorf("mint agent token: %w", err)
	}
	secret := base64.RawURLEncoding.EncodeToString(raw)
	hash, err := bcrypt.GenerateFromPassword([]byte(secret), cost)
	if err != nil {
		return Minted{}, fmt.Errorf("hash agent token: %w", err)
	}
	return Minted{
		Token: prefix + strconv.FormatInt(agentID, 10) + "_" + secret,
		Hash:  string(hash),
	}, nil
}

// AgentID returns the agent id inside a token (long-lived or bootstrap) without checking its secret.
func AgentID(token string) (int64, error) {
	id, _, err := parse(token)
	return id, err
}

// Verify checks token against the stored hash of the agent it names.
func Verify(token, hash string) error {
	_, secret, err := parse(token)
	if err != nil {
		return err
	}
	if err := bcrypt.CompareHashAndPassword([]byte(hash), []byte(secret)); err != nil {
		return ErrMismatch
	}
	return nil
}

func parse(token string) (int64, string, error) {
	rest, ok := strings.CutPrefix(token, Prefix)
	if !ok {
		if rest, ok = strings.CutPrefix(token, BootstrapPrefix); !ok {
			return 0, "", ErrMalformed
		}
	}
	idPart, secret, ok := strings.Cut(rest, "_")
	if !ok || len(secret) != base64.RawURLEncoding.EncodedLen(secretBytes) {
		return 0, "", ErrMalformed
	}
	id, err := strconv.ParseInt(idPart, 10, 64)
	if err != nil || id <= 0 || strconv.FormatInt(id, 10) != idPart {
		return 0, "", ErrMalformed
	}
	if _, err := base64.RawURLEncoding.DecodeString(secret); err != nil {
		return 0, "", ErrMalformed
	}
	return id, secret, nil
}
