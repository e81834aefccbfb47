package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// This file turns a directory of results written by
// scripts/bench-transports.sh into the Markdown of the "Transports" section
// of docs/benchmarks.md. Layout of the directory:
//
//	scenarios.tsv   name TAB label TAB metrics (comma-separated) TAB bench arguments
//	transports.tsv  name TAB label TAB yes|no (whether the reference broker has it)
//	tables.tsv      name TAB title TAB description TAB transports (space-separated) TAB baseline
//	brokers.tsv     name TAB label (the first is "ours", the second the reference)
//	meta.tsv        key TAB value
//	commands.txt    the exact commands, verbatim
//	<transport>/<scenario>/<broker>-<rep>.json   one Result per run
//
// A table whose baseline is "-" compares ours with the reference broker on
// each transport; a transport the reference lacks shows "—" in its cells.
// A table whose baseline names a transport shows ours only, with the ratio
// of each row to ours on that transport.

type transportRow struct {
	name, label string
	ref         bool
}

// TransportsReport renders the transport comparison in dir as Markdown.
func TransportsReport(dir string, w io.Writer) error {
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
	trl, err := readTSV(filepath.Join(dir, "transports.tsv"), 3)
	if err != nil {
		return err
	}
	transports := map[string]transportRow{}
	for _, f := range trl {
		transports[f[0]] = transportRow{name: f[0], label: f[1], ref: f[2] == "yes"}
	}
	tl, err := readTSV(filepath.Join(dir, "tables.tsv"), 5)
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
		title, desc, baseline := t[1], t[2], t[4]
		var rows []transportRow
		for _, n := range strings.Fields(t[3]) {
			tr, ok := transports[n]
			if !ok {
				return fmt.Errorf("table %s: unknown transport %q", t[0], n)
			}
			rows = append(rows, tr)
		}
		if baseline != "-" {
			if _, ok := transports[baseline]; !ok {
				return fmt.Errorf("table %s: unknown baseline transport %q", t[0], baseline)
			}
		}
		fmt.Fprintf(&b, "### %s\n\n%s\n\n", title, desc)
		if baseline == "-" {
			fmt.Fprintf(&b, "| Transport | Scenario | Metric | %s median (min–max) | %s median (min–max) | %s / %s | Lost %s / %s | Broker CPU %% %s / %s | Generator CPU %% %s / %s |\n",
				ours[1], ref[1], ours[1], ref[1], ours[1], ref[1], ours[1], ref[1], ours[1], ref[1])
			b.WriteString("|---|---|---|---|---|---|---|---|---|\n")
		} else {
			fmt.Fprintf(&b, "| Variant | Scenario | Metric | %s median (min–max) | / baseline | Lost | Broker CPU %% | Generator CPU %% |\n", ours[1])
			b.WriteString("|---|---|---|---|---|---|---|---|\n")
		}
		var notes []string
		for _, tr := range rows {
			first := true
			for _, s := range scenarios {
				sdir := filepath.Join(dir, tr.name, s.name)
				runsO, errs := loadRuns(sdir, ours[0])
				var runsR, runsB []*Result
				if baseline == "-" && tr.ref {
					var e2 []string
					runsR, e2 = loadRuns(sdir, ref[0])
					errs = append(errs, e2...)
				}
				if baseline != "-" {
					runsB, _ = loadRuns(filepath.Join(dir, baseline, s.name), ours[0])
				}
				for _, e := range errs {
					notes = append(notes, fmt.Sprintf("%s, %s: %s", tr.label, s.label, e))
				}
				for i, mn := range s.metrics {
					m := CompareMetrics[mn]
					tlabel, slabel := "", ""
					if first {
						tlabel = tr.label
						first = false
					}
					if i == 0 {
						slabel = s.label
					}
					arrow := "higher is better"
					if m.LowerBetter {
						arrow = "lower is better"
					}
					vo := values(runsO, m)
					if baseline == "-" {
						refCell, ratioCell := "—", "—"
						extra := "| | | "
						if tr.ref {
							vr := values(runsR, m)
							refCell, ratioCell = spread(vr, m), ratio(vo, vr)
						}
						if i == 0 {
							lr, cr, gr := "—", "—", "—"
							if tr.ref {
								lr, cr, gr = lostCell(runsR), cpuCell(runsR, brokerCPU, false), cpuCell(runsR, genCPU, true)
							}
							extra = fmt.Sprintf("| %s / %s | %s / %s | %s / %s ",
								lostCell(runsO), lr, cpuCell(runsO, brokerCPU, false), cr, cpuCell(runsO, genCPU, true), gr)
						}
						fmt.Fprintf(&b, "| %s | %s | %s (%s) | %s | %s | %s %s|\n", tlabel, slabel, m.Label, arrow, spread(vo, m), refCell, ratioCell, extra)
						continue
					}
					extra := "| | | "
					if i == 0 {
						extra = fmt.Sprintf("| %s | %s | %s ", lostCell(runsO), cpuCell(runsO, brokerCPU, false), cpuCell(runsO, genCPU, true))
					}
					fmt.Fprintf(&b, "| %s | %s | %s (%s) | %s | %s %s|\n", tlabel, slabel, m.Label, arrow, spread(vo, m), ratio(vo, values(runsB, m)), extra)
				}
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
	fmt.Fprintf(&b, "Throughput is delivered messages per second, the median of the per-second samples of a run; "+
		"the cells show the median over the repetitions and their range. "+
		"— marks a transport %s does not offer. "+
		"Lost, summed over the repetitions: messages acknowledged (QoS 1) or sent (QoS 0) and not delivered by the end of the 2 s grace period. "+
		"CPU columns are medians in percent of one core. "+
		"† marks a generator that used 90%% or more of the cores it could use in a run, so that it, rather than the broker, may have set the pace.\n\n", ref[1])
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
