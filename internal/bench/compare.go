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

// This file turns a directory of results written by scripts/bench-compare.sh
// into the Markdown tables of docs/benchmarks.md. Layout of the directory:
//
//	scenarios.tsv   name TAB label TAB metrics (comma-separated) TAB bench arguments
//	tables.tsv      name TAB title TAB description
//	brokers.tsv     name TAB label (the first is "ours", the second the reference)
//	meta.tsv        key TAB value (machine, versions, date ...)
//	commands.txt    the exact commands, verbatim
//	<table>/<scenario>/<broker>-<rep>.json   one Result per run

// CompareMetric is one figure read from a Result.
type CompareMetric struct {
	Name        string
	Label       string
	LowerBetter bool
	Value       func(*Result) (float64, bool)
	Format      func(float64) string
}

// CompareMetrics are the metrics a scenario line may name.
var CompareMetrics = map[string]CompareMetric{
	"throughput": {"throughput", "delivered msg/s", false, func(r *Result) (float64, bool) {
		if r.Throughput == nil {
			return 0, false
		}
		return r.Throughput.DeliveredMedian, true
	}, func(v float64) string { return human(v) + "/s" }},
	"sent": {"sent", "published msg/s", false, func(r *Result) (float64, bool) {
		if r.Throughput == nil {
			return 0, false
		}
		return r.Throughput.SentMedian, true
	}, func(v float64) string { return human(v) + "/s" }},
	"p50":  {"p50", "latency p50", true, latencyMetric(func(l *LatencyStats) float64 { return l.P50 }), fmtUs},
	"p99":  {"p99", "latency p99", true, latencyMetric(func(l *LatencyStats) float64 { return l.P99 }), fmtUs},
	"p999": {"p999", "latency p99.9", true, latencyMetric(func(l *LatencyStats) float64 { return l.P999 }), fmtUs},
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
	}, func(v float64) string { return human(v) + "/s" }},
}

func latencyMetric(f func(*LatencyStats) float64) func(*Result) (float64, bool) {
	return func(r *Result) (float64, bool) {
		if r.Latency == nil || r.Latency.Count == 0 {
			return 0, false
		}
		return f(r.Latency), true
	}
}

type compareScenario struct {
	name, label string
	metrics     []string
	args        string
}

type compareRow struct{ name, label, desc string }

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

// CompareReport renders the comparison in dir as Markdown.
func CompareReport(dir string, w io.Writer) error {
	sl, err := readTSV(filepath.Join(dir, "scenarios.tsv"), 4)
	if err != nil {
		return err
	}
	var scenarios []compareScenario
	for _, f := range sl {
		s := compareScenario{name: f[0], label: f[1], args: f[3]}
		for _, m := range strings.Split(f[2], ",") {
			if _, ok := CompareMetrics[m]; !ok {
				return fmt.Errorf("scenario %s: unknown metric %q", f[0], m)
			}
			s.metrics = append(s.metrics, m)
		}
		scenarios = append(scenarios, s)
	}
	tl, err := readTSV(filepath.Join(dir, "tables.tsv"), 3)
	if err != nil {
		return err
	}
	bl, err := readTSV(filepath.Join(dir, "brokers.tsv"), 2)
	if err != nil {
		return err
	}
	if len(bl) != 2 {
		return fmt.Errorf("brokers.tsv: want two brokers")
	}
	meta, _ := readTSV(filepath.Join(dir, "meta.tsv"), 2)
	commands, _ := os.ReadFile(filepath.Join(dir, "commands.txt"))

	var b strings.Builder
	if len(meta) > 0 {
		b.WriteString("| | |\n|---|---|\n")
		for _, m := range meta {
			fmt.Fprintf(&b, "| %s | %s |\n", m[0], m[1])
		}
		b.WriteString("\n")
	}
	ours, ref := bl[0], bl[1]
	for _, t := range tl {
		table := compareRow{t[0], t[1], t[2]}
		fmt.Fprintf(&b, "### %s\n\n%s\n\n", table.label, table.desc)
		fmt.Fprintf(&b, "| Scenario | Metric | %s median (min–max) | %s median (min–max) | %s / %s | Lost %s / %s | Broker CPU %% %s / %s | Generator CPU %% %s / %s |\n",
			ours[1], ref[1], ours[1], ref[1], ours[1], ref[1], ours[1], ref[1], ours[1], ref[1])
		b.WriteString("|---|---|---|---|---|---|---|---|\n")
		var notes []string
		for _, s := range scenarios {
			runsO, errsO := loadRuns(filepath.Join(dir, table.name, s.name), ours[0])
			runsR, errsR := loadRuns(filepath.Join(dir, table.name, s.name), ref[0])
			for _, e := range append(errsO, errsR...) {
				notes = append(notes, fmt.Sprintf("%s: %s", s.label, e))
			}
			for i, mn := range s.metrics {
				m := CompareMetrics[mn]
				label := ""
				extra := "| | | "
				if i == 0 {
					label = s.label
					extra = fmt.Sprintf("| %s / %s | %s / %s | %s / %s ",
						lostCell(runsO), lostCell(runsR), cpuCell(runsO, brokerCPU, false), cpuCell(runsR, brokerCPU, false),
						cpuCell(runsO, genCPU, true), cpuCell(runsR, genCPU, true))
				}
				vo, vr := values(runsO, m), values(runsR, m)
				arrow := "higher is better"
				if m.LowerBetter {
					arrow = "lower is better"
				}
				fmt.Fprintf(&b, "| %s | %s (%s) | %s | %s | %s %s|\n", label, m.Label, arrow, spread(vo, m), spread(vr, m), ratio(vo, vr), extra)
			}
		}
		b.WriteString("\n")
		for _, n := range notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
		if len(notes) > 0 {
			b.WriteString("\n")
		}
	}
	b.WriteString("Throughput is delivered messages per second (for fan-out each subscriber's copy counts), the median of the per-second samples of a run; " +
		"the cells show the median over the repetitions and their range. " +
		"Lost, summed over the repetitions: messages acknowledged (QoS 1) or sent (QoS 0) and not delivered by the end of the 2 s grace period — " +
		"for QoS 0 at an unlimited rate that counts messages a broker dropped under overload and messages still queued in it. " +
		"CPU columns are medians in percent of one core (200 = two cores). " +
		"† marks a generator that used 90% or more of the cores it could use, so that it, rather than the broker, may have set the pace.\n\n")
	if len(commands) > 0 {
		b.WriteString("Commands:\n\n```sh\n")
		b.Write(commands)
		if !strings.HasSuffix(string(commands), "\n") {
			b.WriteString("\n")
		}
		b.WriteString("```\n")
	}
	_, err = io.WriteString(w, b.String())
	return err
}

// loadRuns reads dir/<broker>-*.json.
func loadRuns(dir, broker string) ([]*Result, []string) {
	files, _ := filepath.Glob(filepath.Join(dir, broker+"-*.json"))
	slices.Sort(files)
	var runs []*Result
	var errs []string
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
		runs = append(runs, &r)
	}
	if len(files) == 0 {
		errs = append(errs, broker+": no result")
	}
	return runs, errs
}

func values(runs []*Result, m CompareMetric) []float64 {
	var v []float64
	for _, r := range runs {
		if x, ok := m.Value(r); ok && !math.IsNaN(x) {
			v = append(v, x)
		}
	}
	return v
}

func spread(v []float64, m CompareMetric) string {
	if len(v) == 0 {
		return "n/a"
	}
	if len(v) == 1 {
		return m.Format(v[0])
	}
	return fmt.Sprintf("%s (%s–%s)", m.Format(median(v)), m.Format(slices.Min(v)), m.Format(slices.Max(v)))
}

func ratio(a, b []float64) string {
	if len(a) == 0 || len(b) == 0 || median(b) == 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.2f", median(a)/median(b))
}

func lostCell(runs []*Result) string {
	if len(runs) == 0 {
		return "n/a"
	}
	var lost int64
	any := false
	for _, r := range runs {
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

func brokerCPU(r *Result) (float64, bool) {
	if r.Broker == nil {
		return 0, false
	}
	return r.Broker.CPUPercent, true
}

func genCPU(r *Result) (float64, bool) { return r.Generator.CPUPercent, true }

// cpuCell is the median CPU of the runs (100 = one core); with mark, a †
// flags a generator that used 90% or more of the cores it could use in any
// run.
func cpuCell(runs []*Result, f func(*Result) (float64, bool), mark bool) string {
	var v []float64
	bound := false
	for _, r := range runs {
		if x, ok := f(r); ok {
			v = append(v, x)
		}
		bound = bound || r.GeneratorBound()
	}
	if len(v) == 0 {
		return "n/a"
	}
	s := fmt.Sprintf("%.0f", median(v))
	if mark && bound {
		s += "†"
	}
	return s
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
