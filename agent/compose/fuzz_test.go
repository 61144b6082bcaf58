package compose_test

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/stagely/stagely/agent/compose"
)

// FuzzParsePS feeds ParsePS what `docker compose ps --format json` could print, seeded with
// real output of both shapes. It must never panic; whatever it accepts must be one
// container per JSON object of the input, and must read the same again from either shape.
func FuzzParsePS(f *testing.F) {
	files, err := filepath.Glob(filepath.Join("testdata", "ps-*"))
	if err != nil || len(files) == 0 {
		f.Fatalf("no ps output in testdata: %v", err)
	}
	for _, name := range files {
		b, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, s := range []string{
		"", " \n\t", "[]", "[ ]\n", "{}", "[null]", "{}\nnull\n{}", "[{}, 1]", "{} {}", "{}{}",
		`[{"Service":"web"}] [{"Service":"db"}]`, "{\"Service\":\"web\"}\n[{\"Service\":\"db\"}]",
		`{"service":"web","SERVICE":"db","ExitCode":1.5}`, `{"ExitCode":99999999999999999999}`,
		`{"Name":"\ud800","Health":"\xff"}`, `[{"ID":1}]`, `[`, `{"Service":"web"`, "\ufeff[]",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, out []byte) {
		cs, err := compose.ParsePS(out)
		if err != nil {
			return
		}
		if objects, ok := jsonObjects(out); !ok || objects != len(cs) {
			t.Fatalf("accepted %d containers from %d JSON objects (well-formed: %v): %q", len(cs), objects, ok, out)
		}
		array, err := json.Marshal(append([]compose.Container{}, cs...))
		if err != nil {
			t.Fatal(err)
		}
		var lines bytes.Buffer
		for _, c := range cs {
			b, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			lines.Write(append(b, '\n'))
		}
		for shape, again := range map[string][]byte{"array": array, "JSON lines": lines.Bytes()} {
			got, err := compose.ParsePS(again)
			if err != nil {
				t.Fatalf("the %s form of what was accepted is refused: %v\n%s", shape, err, again)
			}
			if len(got) != len(cs) || (len(cs) > 0 && !reflect.DeepEqual(got, cs)) {
				t.Fatalf("the %s form reads as %+v, want %+v", shape, got, cs)
			}
		}
	})
}

// jsonObjects counts the JSON objects in out, read either as one array or as a stream of
// values, independently of ParsePS; ok is false if any value is not an object.
func jsonObjects(out []byte) (n int, ok bool) {
	trimmed := bytes.TrimSpace(out)
	var values []json.RawMessage
	if bytes.HasPrefix(trimmed, []byte("[")) {
		if err := json.Unmarshal(trimmed, &values); err != nil {
			return 0, false
		}
	} else {
		dec := json.NewDecoder(bytes.NewReader(trimmed))
		for dec.More() {
			var v json.RawMessage
			if err := dec.Decode(&v); err != nil {
				return 0, false
			}
			values = append(values, v)
		}
	}
	for _, v := range values {
		if !strings.HasPrefix(string(bytes.TrimSpace(v)), "{") {
			return len(values), false
		}
	}
	return len(values), true
}
