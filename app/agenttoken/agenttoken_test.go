package agenttoken_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/stagely/stagely/app/agenttoken"
)

// mint is agenttoken.Mint at the real cost, failing the test on an error.
func mint(t *testing.T, agentID int64) agenttoken.Minted {
	t.Helper()
	m, err := agenttoken.Mint(agentID)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestMint_TokenCarriesAgentIDAnd256RandomBits(t *testing.T) {
	t.Parallel()
	m := mint(t, 4242)
	if !strings.HasPrefix(m.Token, "stg_4242_") {
		t.Fatalf("token %q lacks the stg_<id>_ prefix", m.Token[:9])
	}
	secret := strings.TrimPrefix(m.Token, "stg_4242_")
	raw, err := base64.RawURLEncoding.DecodeString(secret)
	if err != nil || len(raw)*8 < 256 {
		t.Fatalf("secret part carries %d bits (err %v), want at least 256", len(raw)*8, err)
	}
	id, err := agenttoken.AgentID(m.Token)
	if err != nil || id != 4242 {
		t.Fatalf("AgentID = %d, %v", id, err)
	}
	if !strings.HasPrefix(m.Hash, "$2") || strings.Contains(m.Hash, secret) {
		t.Fatalf("hash %q is not a bcrypt hash of the secret", m.Hash)
	}
	if c, err := bcrypt.Cost([]byte(m.Hash)); err != nil || c != agenttoken.Cost {
		t.Fatalf("cost of the hash = %d, %v; want %d", c, err, agenttoken.Cost)
	}
	if err := agenttoken.Verify(m.Token, m.Hash); err != nil {
		t.Fatalf("Verify(own token) = %v", err)
	}
}

func TestMint_TokensAreUnique(t *testing.T) {
	t.Parallel()
	a := mint(t, 1)
	b := mint(t, 1)
	if a.Token == b.Token || a.Hash == b.Hash {
		t.Fatal("two mints gave the same token or hash")
	}
	if err := agenttoken.Verify(a.Token, b.Hash); !errors.Is(err, agenttoken.ErrMismatch) {
		t.Fatalf("token A against hash B = %v, want ErrMismatch", err)
	}
}

func TestMint_NeverPrintsToken(t *testing.T) {
	t.Parallel()
	m := mint(t, 9)
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		if out := fmt.Sprintf(format, m); strings.Contains(out, m.Token) {
			t.Fatalf("%s printed the token", format)
		}
	}
}

func TestVerify_RefusesMalformedTokens(t *testing.T) {
	t.Parallel()
	m := mint(t, 12)
	secret := strings.TrimPrefix(m.Token, "stg_12_")
	tests := []struct {
		name  string
		token string
		want  error
	}{
		{"empty", "", agenttoken.ErrMalformed},
		{"no prefix", "12_" + secret, agenttoken.ErrMalformed},
		{"other prefix", "ghs_12_" + secret, agenttoken.ErrMalformed},
		{"no id", "stg__" + secret, agenttoken.ErrMalformed},
		{"negative id", "stg_-12_" + secret, agenttoken.ErrMalformed},
		{"leading zero id", "stg_012_" + secret, agenttoken.ErrMalformed},
		{"short secret", "stg_12_" + secret[:20], agenttoken.ErrMalformed},
		{"non base64 secret", "stg_12_" + strings.Repeat("!", len(secret)), agenttoken.ErrMalformed},
		{"right shape wrong secret", "stg_12_" + strings.Repeat("A", len(secret)), agenttoken.ErrMismatch},
		{"other agent id", "stg_13_" + secret, nil}, // the id only picks the row; the hash check is the caller's row
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := agenttoken.Verify(tt.token, m.Hash)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Verify = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestMint_RefusesNonPositiveAgentID(t *testing.T) {
	t.Parallel()
	if _, err := agenttoken.Mint(0); err == nil {
		t.Fatal("Mint(0) succeeded")
	}
}

func TestMintCost_HashCarriesTheCostAndVerifiesLikeMint(t *testing.T) {
	t.Parallel()
	cheap, err := agenttoken.MintCost(5, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if c, err := bcrypt.Cost([]byte(cheap.Hash)); err != nil || c != bcrypt.MinCost {
		t.Fatalf("cost of the hash = %d, %v; want %d", c, err, bcrypt.MinCost)
	}
	if err := agenttoken.Verify(cheap.Token, cheap.Hash); err != nil {
		t.Fatalf("Verify(own token) = %v", err)
	}
	other, err := agenttoken.MintCost(5, bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	if err := agenttoken.Verify(cheap.Token, other.Hash); !errors.Is(err, agenttoken.ErrMismatch) {
		t.Fatalf("token against another token's hash = %v, want ErrMismatch", err)
	}
}
