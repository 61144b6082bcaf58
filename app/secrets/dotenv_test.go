package secrets_test

import (
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/stagely/stagely/app/secrets"
)

func TestParseDotenv_ReadsWhatDotenvFilesHold(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   string
		want map[string]string
	}{
		{"plain pairs, comments and blank lines", "# db\nDB_HOST=db\n\n  # indented comment\nDB_PORT=5432\n", map[string]string{"DB_HOST": "db", "DB_PORT": "5432"}},
		{"export prefix", "export API_KEY=abc\nexport\tTAB=1\n", map[string]string{"API_KEY": "abc", "TAB": "1"}},
		{"spaces around = and an inline comment", "KEY = value with spaces   # why\n", map[string]string{"KEY": "value with spaces"}},
		{"a # inside an unquoted value is kept", "URL=https://x.example/#frag\n", map[string]string{"URL": "https://x.example/#frag"}},
		{"empty values", "EMPTY=\nQUOTED=\"\"\nSINGLE=''\n", map[string]string{"EMPTY": "", "QUOTED": "", "SINGLE": ""}},
		{"single quotes are literal", `PW='pa$$ \n "x" # not a comment'`, map[string]string{"PW": `pa$$ \n "x" # not a comment`}},
		{"double quotes unescape", `MSG="line1\nline2\t\"q\" \\ \$HOME \x" # c`, map[string]string{"MSG": "line1\nline2\t\"q\" \\ $HOME \\x"}},
		{"a double-quoted value spans lines", "KEY=\"-----BEGIN-----\nabc\n-----END-----\"\nNEXT=1\n", map[string]string{"KEY": "-----BEGIN-----\nabc\n-----END-----", "NEXT": "1"}},
		{"CRLF line ends", "A=1\r\nB=\"2\"\r\n", map[string]string{"A": "1", "B": "2"}},
		{"${VAR} is kept as written", "URL=postgres://${USER}@db\n", map[string]string{"URL": "postgres://${USER}@db"}},
		{"equals signs inside the value", "TOKEN=a=b=c\n", map[string]string{"TOKEN": "a=b=c"}},
		{"a key named export", "export=1\n", map[string]string{"export": "1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars, errs := secrets.ParseDotenv(tt.in)
			if errs != nil {
				t.Fatalf("errors: %v", errs)
			}
			got := map[string]string{}
			for _, v := range vars {
				got[v.Key] = v.Value
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseDotenv_NamesEveryBadLineAndReturnsNothing(t *testing.T) {
	t.Parallel()
	in := strings.Join([]string{
		"GOOD=1",                         // 1
		"no equals sign here",            // 2
		"MY-KEY=x",                       // 3
		"GOOD=2",                         // 4
		"S='open-secret-value",           // 5
		`T="closed" trailing-secret-val`, // 6
		`Q="unterminated-secret-value`,   // 7: a double quote may span lines, so it goes last
	}, "\n")
	vars, errs := secrets.ParseDotenv(in)
	if vars != nil {
		t.Fatalf("vars = %v, want none when a line is bad", vars)
	}
	want := []struct {
		line int
		msg  string
	}{
		{2, "expected KEY=VALUE"},
		{3, `key "MY-KEY" must start with a letter or _`},
		{4, "GOOD is already set on line 1"},
		{5, "the single quote is never closed"},
		{6, "unexpected text after the closing quote"},
		{7, "the double quote opened here is never closed"},
	}
	if len(errs) != len(want) {
		t.Fatalf("errors = %v, want %d", errs, len(want))
	}
	for i, w := range want {
		if errs[i].Line != w.line || !strings.Contains(errs[i].Message, w.msg) {
			t.Errorf("error %d = %v, want line %d %q", i, errs[i], w.line, w.msg)
		}
		if strings.Contains(errs[i].Message, "secret-val") {
			t.Errorf("error %d quotes a value: %v", i, errs[i])
		}
	}
}

func TestParseDotenv_RefusesFilesOverItsBounds(t *testing.T) {
	t.Parallel()
	var many strings.Builder
	for i := 0; i <= secrets.MaxDotenvVars; i++ {
		fmt.Fprintf(&many, "K%d=v\n", i)
	}
	tests := []struct {
		name, in, want string
	}{
		{"too many variables", many.String(), "the limit is 500 at once"},
		{"too large", "K=" + strings.Repeat("x", secrets.MaxDotenvBytes), "the limit is 131072"},
		{"a value over 64 KiB", "K=" + strings.Repeat("x", secrets.MaxValueBytes+1), "the value of K is 65537 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			vars, errs := secrets.ParseDotenv(tt.in)
			if vars != nil || len(errs) != 1 || !strings.Contains(errs[0].Message, tt.want) {
				t.Fatalf("ParseDotenv = %d vars, %v; want %q", len(vars), errs, tt.want)
			}
		})
	}
}
