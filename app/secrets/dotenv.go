package secrets

import (
	"fmt"
	"strings"
)

// Bounds of one pasted .env file: a whole project's configuration fits easily, and a paste of
// something that is not a .env file is refused before anything is sealed.
const (
	MaxDotenvBytes = 128 << 10
	MaxDotenvVars  = 500
)

// DotenvVar is one KEY=VALUE of a .env file, with the line it starts on.
type DotenvVar struct {
	Line  int
	Key   string
	Value string
}

// LineError says what is wrong on one line of a .env file. It never quotes a value.
type LineError struct {
	Line    int
	Message string
}

// Error implements error.
func (e LineError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Message) }

// ParseDotenv reads a .env file as docker compose's env_file and the dotenv libraries do:
// KEY=VALUE lines, an optional "export " prefix, # comments and blank lines skipped, values
// unquoted (an inline comment after " #"), 'single-quoted' (literal) or "double-quoted" (\n,
// \r, \t, \", \\ and \$ unescaped; may span lines). ${VAR} is kept as written: a secret's
// value is never interpolated. Any bad line is reported, and then no variable is returned,
// so a caller stores all of the file or none of it.
func ParseDotenv(text string) ([]DotenvVar, []LineError) {
	if len(text) > MaxDotenvBytes {
		return nil, []LineError{{Line: 0, Message: fmt.Sprintf("the file is %d bytes, the limit is %d (%d KiB)", len(text), MaxDotenvBytes, MaxDotenvBytes>>10)}}
	}
	lines := strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n")
	var (
		vars []DotenvVar
		errs []LineError
	)
	firstLine := map[string]int{}
	for i := 0; i < len(lines); i++ {
		n := i + 1
		v, next, err := parseDotenvLine(lines, i)
		i = next
		switch {
		case err != "":
			errs = append(errs, LineError{Line: n, Message: err})
		case v == nil:
		case firstLine[v.Key] != 0:
			errs = append(errs, LineError{Line: n, Message: fmt.Sprintf("%s is already set on line %d: keep one of them", v.Key, firstLine[v.Key])})
		default:
			firstLine[v.Key] = n
			v.Line = n
			vars = append(vars, *v)
		}
	}
	if len(vars) > MaxDotenvVars {
		errs = append(errs, LineError{Line: 0, Message: fmt.Sprintf("the file sets %d variables, the limit is %d at once", len(vars), MaxDotenvVars)})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return vars, nil
}

// parseDotenvLine reads the variable starting on lines[i], if any; next is the index of the
// last line it used (a double-quoted value may span lines).
func parseDotenvLine(lines []string, i int) (v *DotenvVar, next int, errMsg string) {
	line := strings.TrimLeft(lines[i], " \t")
	if line == "" || strings.HasPrefix(line, "#") {
		return nil, i, ""
	}
	if rest, ok := strings.CutPrefix(line, "export"); ok && rest != "" && (rest[0] == ' ' || rest[0] == '\t') {
		line = strings.TrimLeft(rest, " \t")
	}
	eq := strings.IndexByte(line, '=')
	if eq < 0 {
		return nil, i, "expected KEY=VALUE: there is no ="
	}
	key := strings.TrimRight(line[:eq], " \t")
	if err := Validate(scopeForKeyCheck, key, nil); err != nil {
		return nil, i, fmt.Sprintf("key %q must start with a letter or _ and hold only letters, digits and _", key)
	}
	raw := strings.TrimLeft(line[eq+1:], " \t")
	var (
		value string
		msg   string
	)
	switch {
	case strings.HasPrefix(raw, `"`):
		value, next, msg = doubleQuoted(lines, i, raw[1:])
	case strings.HasPrefix(raw, `'`):
		value, next, msg = singleQuoted(lines, i, raw[1:])
	default:
		value, next = unquoted(raw), i
	}
	if msg != "" {
		return nil, next, key + ": " + msg
	}
	if len(value) > MaxValueBytes {
		return nil, next, fmt.Sprintf("the value of %s is %d bytes, the limit is %d (64 KiB)", key, len(value), MaxValueBytes)
	}
	return &DotenvVar{Key: key, Value: value}, next, ""
}

// scopeForKeyCheck is a valid scope, so Validate judges the key alone.
const scopeForKeyCheck = "global"

// unquoted ends the value at an inline comment (a # after whitespace) and trims it.
func unquoted(raw string) string {
	for j := 1; j < len(raw); j++ {
		if raw[j] == '#' && (raw[j-1] == ' ' || raw[j-1] == '\t') {
			raw = raw[:j]
			break
		}
	}
	return strings.TrimRight(raw, " \t")
}

// afterQuote accepts only whitespace or a comment after a closing quote.
func afterQuote(rest string) string {
	rest = strings.TrimLeft(rest, " \t")
	if rest == "" || strings.HasPrefix(rest, "#") {
		return ""
	}
	return "unexpected text after the closing quote: quote the whole value"
}

func singleQuoted(lines []string, i int, rest string) (string, int, string) {
	end := strings.IndexByte(rest, '\'')
	if end < 0 {
		return "", i, "the single quote is never closed on this line"
	}
	return rest[:end], i, afterQuote(rest[end+1:])
}

func doubleQuoted(lines []string, i int, rest string) (string, int, string) {
	var b strings.Builder
	start := i
	for {
		for j := 0; j < len(rest); j++ {
			c := rest[j]
			switch {
			case c == '"':
				return b.String(), i, afterQuote(rest[j+1:])
			case c == '\\' && j+1 < len(rest):
				j++
				switch e := rest[j]; e {
				case 'n':
					b.WriteByte('\n')
				case 'r':
					b.WriteByte('\r')
				case 't':
					b.WriteByte('\t')
				case '"', '\\', '$':
					b.WriteByte(e)
				default:
					b.WriteByte('\\')
					b.WriteByte(e)
				}
			default:
				b.WriteByte(c)
			}
		}
		if i+1 >= len(lines) {
			return "", start, fmt.Sprintf("the double quote opened here is never closed (the file ends on line %d)", i+1)
		}
		b.WriteByte('\n')
		i++
		rest = lines[i]
	}
}
