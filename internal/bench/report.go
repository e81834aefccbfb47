package bench

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// This file is the report engine behind CompareReport, ScalingReport and
// TransportsReport: it reads a results directory written by one of the
// scripts (scripts/bench-compare.sh, scripts/bench-transports.sh), the JSON
// Result of every run, and writes Markdown tables of medians, min–max
// ranges and ratios. Every results directory holds
//
//	scenarios.tsv   name TAB label TAB metrics (comma-separated) TAB bench arguments
//	brokers.tsv     name TAB label (the first is "ours", the second the reference)
//	meta.tsv        key TAB value (machine, versions, date ...), optional
//	commands.txt    the exact commands, verbatim, optional
//	<group>/<scenario>/<broker>-<rep>.json   one Result per run
//
// plus the files that say which groups (tables, transports) to show; each
// report documents its own.

// CompareMetric is one figure read from a Result.
type CompareMetric struct {
	Name        string
	Label       string
	LowerBetter bool
	Value       func(*Result) (float64, bool)
	Format      func(float64) string
}

func ratePerSec(v float64) string { return human(v) + "/s" }

// CompareMetrics are the metrics a scenario line may name.
var CompareMetrics = map[string]CompareMetric{
	"throughput": {"throughput", "delivered msg/s", false, throughputMetric(func(t *Throughput) float64 { return t.DeliveredMedian }), ratePerSec},
	"sent":       {"sent", "published msg/s", false, throughputMetric(func(t *Throughput) float64 { return t.SentMedian }), ratePerSec},
	"p50":        {"p50", "latency p50", true, latencyMetric(func(l *LatencyStats) float64 { return l.P50 }), fmtUs},
	"p99":        {"p99", "latency p99", true, latencyMetric(func(l *LatencyStats) float64 { return l.P99 }), fmtUs},
	"p999":       {"p999", "latency p99.9", true, latencyMetric(func(l *LatencyStats) float64 { return l.P999 }), fmtUs},
	"bytes_per_conn": {"bytes_per_conn", "broker RSS per connection", true, func(r *Result) (float64, bool) {
		if r.Idle == nil || r.Idle.RSSAfter == 0 {
			return 0, false
		}
		return r.Idle.BytesPerConnection, true
	}, bytesHuman},
	"connect_rate": {"connect_rate", "connections/s", false, func(r *Result) (float64, bool) {
		if r.Idle == nil {
			return 0, false
		}
		return r.Idle.ConnectRate, true
	}, ratePerSec},
}

func throughputMetric(f func(*Throughput) float64) func(*Result) (float64, bool) {
	return func(r *Result) (float64, bool) {
		if r.Throughput == nil {
			return 0, false
		}
		return f(r.Throughput), true
	}
}

func latencyMetric(f func(*LatencyStats) float64) func(*Result) (float64, bool) {
	return func(r *Result) (float64, bool) {
		if r.Latency == nil || r.Latency.Count == 0 {
			return 0, false
		}
		return f(r.Latency), true
	}
}

// cell is the Metric column: the label and which way is better.
func (m CompareMetric) cell() string {
	if m.LowerBetter {
		return m.Label + " (lower is better)"
	}
	return m.Label + " (higher is better)"
}

type compareScenario struct {
	name, label string
	metrics     []string
	args        string
}

// has reports whether the scenario shows metric name.
func (s compareScenario) has(name string) bool { return slices.Contains(s.metrics, name) }

type brokerRef struct{ name, label string }

// resultsDir is an open results directory: what every report reads.
type resultsDir struct {
	dir       string
	scenarios []compareScenario
	ours, ref brokerRef
	meta      [][]string
	commands  []byte
}

// openResults reads the files every results directory holds and the lines
// of the report's own file (at least fields fields each).
func openResults(dir, file string, fields int) (*resultsDir, [][]string, error) {
	d, err := readResults(dir)
	if err != nil {
		return nil, nil, err
	}
	lines, err := readTSV(filepath.Join(dir, file), fields)
	if err != nil {
		return nil, nil, err
	}
	return d, lines, nil
}

func readResults(dir string) (*resultsDir, error) {
	d := &resultsDir{dir: dir}
	sl, err := readTSV(filepath.Join(dir, "scenarios.tsv"), 4)
	if err != nil {
		return nil, err
	}
	for _, f := range sl {
		s := compareScenario{name: f[0], label: f[1], args: f[3]}
		for _, m := range strings.Split(f[2], ",") {
			if _, ok := CompareMetrics[m]; !ok {
				return nil, fmt.Errorf("scenario %s: unknown metric %q", f[0], m)
			}
			s.metrics = append(s.metrics, m)
		}
		d.scenarios = append(d.scenarios, s)
	}
	bl, err := readTSV(filepath.Join(dir, "brokers.tsv"), 2)
	if err != nil {
		return nil, err
	}
	if len(bl) != 2 {
		return nil, fmt.Errorf("brokers.tsv: want two brokers")
	}
	d.ours, d.ref = brokerRef{bl[0][0], bl[0][1]}, brokerRef{bl[1][0], bl[1][1]}
	d.meta, _ = readTSV(filepath.Join(dir, "meta.tsv"), 2)
	d.commands, _ = os.ReadFile(filepath.Join(dir, "commands.txt"))
	return d, nil
}

// side is the runs of one broker for one scenario in one group. An absent
// side is a broker that does not take part there (shown as —).
type side struct {
	runs   []*Result
	absent bool
}

var absentSide = side{absent: true}

// load reads group/scenario/<broker>-*.json; the problems it meets are
// returned as notes.
func (d *resultsDir) load(group, scenario string, b brokerRef) (side, []string) {
	runs, errs := loadRuns(filepath.Join(d.dir, group, scenario), b.name)
	return side{runs: runs}, errs
}

// readTSV reads tab-separated lines with at least n fields; # starts a comment.
func readTSV(path string, n int) ([][]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out [][]string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		fields := strings.Split(line, "\t")
		if len(fields) < n {
			return nil, fmt.Errorf("%s: want %d tab-separated fields in %q", path, n, line)
		}
		out = append(out, fields)
	}
	return out, sc.Err()
}

// loadRuns reads dir/<broker>-*.json. The notes name unreadable files,
// each run's errors, duplicated or misrouted deliveries, and a broker
// without any result.
func loadRuns(dir, broker string) ([]*Result, []string) {
	files, _ := filepath.Glob(filepath.Join(dir, broker+"-*.json"))
	slices.Sort(files)
	var runs []*Result
	var errs []string
	var dups, misrouted int64
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		var r Result
		if err := json.Unmarshal(data, &r); err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", filepath.Base(f), err))
			continue
		}
		for _, e := range r.Errors {
			errs = append(errs, fmt.Sprintf("%s %s: %s", broker, strings.TrimSuffix(filepath.Base(f), ".json"), e))
		}
		if r.Messages != nil {
			dups += r.Messages.Duplicated
			misrouted += r.Messages.Misrouted
		}
		runs = append(runs, &r)
	}
	if dups > 0 || misrouted > 0 {
		errs = append(errs, fmt.Sprintf("%s: %d duplicated and %d misrouted deliveries (summed over the repetitions)", broker, dups, misrouted))
	}
	if len(files) == 0 {
		errs = append(errs, broker+": no result")
	}
	return runs, errs
}

func (s side) values(m CompareMetric) []float64 {
	var v []float64
	for _, r := range s.runs {
		if x, ok := m.Value(r); ok && !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	return v
}

// spread is the median and, over several runs, the range of metric m.
func (s side) spread(m CompareMetric) string {
	if s.absent {
		return "—"
	}
	v := s.values(m)
	switch len(v) {
	case 0:
		return "n/a"
	case 1:
		return m.Format(v[0])
	}
	return fmt.Sprintf("%s (%s–%s)", m.Format(median(v)), m.Format(slices.Min(v)), m.Format(slices.Max(v)))
}

// ratio divides the median of a by the median of b.
func ratio(a, b side, m CompareMetric) string {
	if a.absent || b.absent {
		return "—"
	}
	va, vb := a.values(m), b.values(m)
	if len(va) == 0 || len(vb) == 0 || median(vb) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", median(va)/median(vb))
}

// lost sums the lost messages over the runs.
func (s side) lost() string {
	switch {
	case s.absent:
		return "—"
	case len(s.runs) == 0:
		return "n/a"
	}
	var lost int64
	any := false
	for _, r := range s.runs {
		if r.Messages != nil {
			lost += r.Messages.Lost
			any = true
		}
	}
	if !any {
		return "–"
	}
	return fmt.Sprint(lost)
}

func (s side) brokerCPU() string {
	return s.cpu(func(r *Result) (float64, bool) {
		if r.Broker == nil {
			return 0, false
		}
		return r.Broker.CPUPercent, true
	}, false)
}

func (s side) generatorCPU() string {
	return s.cpu(func(r *Result) (float64, bool) { return r.Generator.CPUPercent, true }, true)
}

// cpu is the median CPU of the runs (100 = one core); with mark, a † flags
// a generator that used 90% or more of the cores it could use in any run.
func (s side) cpu(f func(*Result) (float64, bool), mark bool) string {
	if s.absent {
		return "—"
	}
	var v []float64
	bound := false
	for _, r := range s.runs {
		if x, ok := f(r); ok {
			v = append(v, x)
		}
		bound = bound || r.GeneratorBound()
	}
	if len(v) == 0 {
		return "n/a"
	}
	c := fmt.Sprintf("%.0f", median(v))
	if mark && bound {
		c += "†"
	}
	return c
}

// runCells are the Lost, Broker CPU and Generator CPU cells of one side.
func (s side) runCells() []string { return []string{s.lost(), s.brokerCPU(), s.generatorCPU()} }

// pairCells are the same cells of two sides, as "a / b".
func pairCells(a, b side) []string {
	ca, cb := a.runCells(), b.runCells()
	for i := range ca {
		ca[i] += " / " + cb[i]
	}
	return ca
}

// markdown builds a report.
type markdown struct{ strings.Builder }

// meta writes the key/value table of the run's conditions.
func (b *markdown) meta(rows [][]string) {
	if len(rows) == 0 {
		return
	}
	b.WriteString("| | |\n|---|---|\n")
	for _, m := range rows {
		fmt.Fprintf(b, "| %s | %s |\n", m[0], m[1])
	}
	b.WriteString("\n")
}

// table starts a titled table with its header.
func (b *markdown) table(title, desc string, header ...string) {
	fmt.Fprintf(b, "### %s\n\n%s\n\n", title, desc)
	b.row(header...)
	b.WriteString(strings.Repeat("|---", len(header)) + "|\n")
}

// row writes one table row. Empty cells at the end of a row (the columns
// that only a scenario's first metric fills) are written narrow.
func (b *markdown) row(cells ...string) {
	last := len(cells) - 1
	for last >= 0 && cells[last] == "" {
		last--
	}
	for i, c := range cells {
		if i > last {
			b.WriteString("| ")
			continue
		}
		b.WriteString("| " + c + " ")
	}
	b.WriteString("|\n")
}

// endTable closes a table with its notes.
func (b *markdown) endTable(notes []string) {
	b.WriteString("\n")
	for _, n := range notes {
		fmt.Fprintf(b, "- %s\n", n)
	}
	if len(notes) > 0 {
		b.WriteString("\n")
	}
}

// commands writes the closing paragraph and the commands block.
func (b *markdown) commands(legend string, commands []byte) {
	b.WriteString(legend + "\n\n")
	if len(commands) == 0 {
		return
	}
	b.WriteString("Commands:\n\n```sh\n")
	b.Write(commands)
	if commands[len(commands)-1] != '\n' {
		b.WriteString("\n")
	}
	b.WriteString("```\n")
}

func (b *markdown) writeTo(w io.Writer) error {
	_, err := io.WriteString(w, b.String())
	return err
}

// firstOnly returns cells when first is true and as many empty cells
// otherwise: the per-run columns stand on a scenario's first metric row.
func firstOnly(first bool, cells []string) []string {
	if first {
		return cells
	}
	return make([]string, len(cells))
}

// SpliceDoc replaces the text between the begin and end marker lines of
// the file at path with body (adding the markers at the end when absent),
// keeping everything around them.
func SpliceDoc(path, begin, end, body string) error {
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	block := begin + "\n" + body
	if !strings.HasSuffix(block, "\n") {
		block += "\n"
	}
	block += end
	i := strings.Index(s, begin)
	j := strings.Index(s, end)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + block + s[j+len(end):]
	case i < 0 && j < 0:
		if s != "" && !strings.HasSuffix(s, "\n") {
			s += "\n"
		}
		s += "\n" + block + "\n"
	default:
		return fmt.Errorf("%s: markers %q and %q are not in order", path, begin, end)
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
