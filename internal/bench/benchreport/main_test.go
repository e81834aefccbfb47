package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mqtt5go/mqtt5/internal/bench"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Each mode has its own markers, so the compare, scaling and transports
// sections of one document are replaced independently.
func TestModesSpliceIndependently(t *testing.T) {
	seen := map[string]string{}
	for name, m := range modes {
		if m.report == nil || m.begin == "" || m.end == "" {
			t.Fatalf("mode %s incomplete", name)
		}
		for _, marker := range []string{m.begin, m.end} {
			if other, dup := seen[marker]; dup {
				t.Fatalf("modes %s and %s share marker %q", name, other, marker)
			}
			seen[marker] = name
		}
	}
	for _, want := range []string{"compare", "scaling", "transports"} {
		if _, ok := modes[want]; !ok {
			t.Errorf("no mode %s", want)
		}
	}
	doc := filepath.Join(t.TempDir(), "doc.md")
	for _, name := range []string{"compare", "scaling", "transports", "scaling"} {
		m := modes[name]
		if err := bench.SpliceDoc(doc, m.begin, m.end, name+" body\n"); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"compare", "scaling", "transports"} {
		if n := strings.Count(string(data), name+" body"); n != 1 {
			t.Errorf("%s body %d times in:\n%s", name, n, data)
		}
	}
}
