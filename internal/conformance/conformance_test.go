package conformance

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"testing"
)

// repoRoot returns the repository root (two levels above this file).
func repoRoot(t *testing.T) string {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		t.Fatal("no caller")
	}
	return filepath.Join(filepath.Dir(file), "..", "..")
}

var idRe = regexp.MustCompile(`MQTT-\d+\.\d+(\.\d+)?-\d+`)

// specIDs returns the statement IDs of MQTT 5.0, from testdata (a copy of
// the IDs, one per line). When the normative statements file sits beside the
// repository (../shared/spec), the copy is checked against it.
func specIDs(t *testing.T, root string) []string {
	data, err := os.ReadFile(filepath.Join(root, "internal", "conformance", "testdata", "statement-ids.txt"))
	if err != nil {
		t.Fatal(err)
	}
	ids := strings.Fields(string(data))
	path := filepath.Join(root, "..", "shared", "spec", "mqtt-v5.0-normative-statements.md")
	f, err := os.Open(path)
	if err != nil {
		t.Logf("normative statements not beside the repository (%v): using the copy of the IDs only", err)
		return ids
	}
	defer f.Close()
	var fromSpec []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if line := sc.Text(); strings.HasPrefix(line, "## MQTT-") {
			fromSpec = append(fromSpec, strings.TrimPrefix(line, "## "))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if strings.Join(fromSpec, " ") != strings.Join(ids, " ") {
		t.Fatalf("testdata/statement-ids.txt differs from %s; regenerate it with: grep '^## MQTT-' %s | sed 's/^## //'", path, path)
	}
	return ids
}

type row struct {
	id, status string
	tests      []string
	line       int
}

// docRows parses the table rows of docs/conformance.md:
// | MQTT-x.y.z-n | summary | status | tests or reason |
func docRows(t *testing.T, root string) []row {
	data, err := os.ReadFile(filepath.Join(root, "docs", "conformance.md"))
	if err != nil {
		t.Fatal(err)
	}
	var rows []row
	for i, line := range strings.Split(string(data), "\n") {
		if !strings.HasPrefix(line, "| MQTT-") {
			continue
		}
		cells := strings.Split(strings.Trim(line, "| "), "|")
		if len(cells) < 4 {
			t.Errorf("conformance.md:%d: want 4 cells: %q", i+1, line)
			continue
		}
		r := row{id: strings.TrimSpace(cells[0]), status: strings.TrimSpace(cells[2]), line: i + 1}
		for _, m := range regexp.MustCompile("`([A-Za-z0-9_./]+)`").FindAllStringSubmatch(cells[3], -1) {
			r.tests = append(r.tests, m[1])
		}
		rows = append(rows, r)
	}
	return rows
}

// testNames collects every Test, Fuzz, Benchmark and Example function of
// the repository, keyed "pkgdir.Name" and "Name".
func testNames(t *testing.T, root string) map[string]bool {
	names := map[string]bool{}
	fn := regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Benchmark|Example)[A-Za-z0-9_]*)\(`)
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && p != root {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, "_test.go") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, filepath.Dir(p))
		for _, m := range fn.FindAllStringSubmatch(string(data), -1) {
			names[m[1]] = true
			names[filepath.ToSlash(rel)+"."+m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestConformanceDocCoversEveryStatement(t *testing.T) {
	root := repoRoot(t)
	rows := docRows(t, root)
	seen := map[string]int{}
	for _, r := range rows {
		seen[r.id]++
	}
	for _, id := range specIDs(t, root) {
		switch seen[id] {
		case 0:
			t.Errorf("%s is missing from docs/conformance.md", id)
		case 1:
		default:
			t.Errorf("%s appears %d times in docs/conformance.md", id, seen[id])
		}
	}
}

func TestConformanceDocRowsAreWellFormed(t *testing.T) {
	root := repoRoot(t)
	names := testNames(t, root)
	for _, r := range docRows(t, root) {
		if !idRe.MatchString(r.id) {
			t.Errorf("conformance.md:%d: bad statement ID %q", r.line, r.id)
		}
		switch r.status {
		case "tested":
			if len(r.tests) == 0 {
				t.Errorf("conformance.md:%d: %s is marked tested but names no test", r.line, r.id)
			}
			for _, name := range r.tests {
				if !names[name] {
					t.Errorf("conformance.md:%d: %s names test %s, which does not exist", r.line, r.id, name)
				}
			}
		case "n/a", "not yet":
		default:
			t.Errorf("conformance.md:%d: %s has status %q (want tested, n/a or not yet)", r.line, r.id, r.status)
		}
	}
}
