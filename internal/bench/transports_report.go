package bench

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"
)

// This file turns a directory of results written by
// scripts/bench-transports.sh into the Markdown of the "Transports" section
// of docs/benchmarks.md (the engine is report.go). Besides the files every
// results directory holds:
//
//	transports.tsv  name TAB label TAB yes|no (whether the reference broker has it)
//	tables.tsv      name TAB title TAB description TAB transports (space-separated) TAB baseline
//
// Results are <transport>/<scenario>/<broker>-<rep>.json.
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
	d, tl, err := openResults(dir, "tables.tsv", 5)
	if err != nil {
		return err
	}
	trl, err := readTSV(filepath.Join(dir, "transports.tsv"), 3)
	if err != nil {
		return err
	}
	transports := map[string]transportRow{}
	for _, f := range trl {
		transports[f[0]] = transportRow{name: f[0], label: f[1], ref: f[2] == "yes"}
	}
	var b markdown
	b.meta(d.meta)
	ours, ref := d.ours.label, d.ref.label
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
		compare := baseline == "-"
		if !compare {
			if _, ok := transports[baseline]; !ok {
				return fmt.Errorf("table %s: unknown baseline transport %q", t[0], baseline)
			}
		}
		if compare {
			b.table(title, desc, "Transport", "Scenario", "Metric", ours+" median (min–max)", ref+" median (min–max)", ours+" / "+ref,
				"Lost "+ours+" / "+ref, "Broker CPU % "+ours+" / "+ref, "Generator CPU % "+ours+" / "+ref)
		} else {
			b.table(title, desc, "Variant", "Scenario", "Metric", ours+" median (min–max)", "/ baseline", "Lost", "Broker CPU %", "Generator CPU %")
		}
		var notes []string
		for _, tr := range rows {
			first := true
			for _, s := range d.scenarios {
				o, errs := d.load(tr.name, s.name, d.ours)
				r := absentSide
				switch {
				case compare && tr.ref:
					var e2 []string
					r, e2 = d.load(tr.name, s.name, d.ref)
					errs = append(errs, e2...)
				case !compare:
					r, _ = d.load(baseline, s.name, d.ours)
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
					cells := []string{tlabel, slabel, m.cell(), o.spread(m)}
					if compare {
						cells = append(cells, r.spread(m), ratio(o, r, m))
						cells = append(cells, firstOnly(i == 0, pairCells(o, r))...)
					} else {
						cells = append(cells, ratio(o, r, m))
						cells = append(cells, firstOnly(i == 0, o.runCells())...)
					}
					b.row(cells...)
				}
			}
		}
		b.endTable(notes)
	}
	b.commands(fmt.Sprintf("Throughput is delivered messages per second, the median of the per-second samples of a run; "+
		"the cells show the median over the repetitions and their range. "+
		"— marks a transport %s does not offer. "+
		"Lost, summed over the repetitions: messages acknowledged (QoS 1) or sent (QoS 0) and not delivered by the end of the 2 s grace period. "+
		"CPU columns are medians in percent of one core. "+
		"† marks a generator that used 90%% or more of the cores it could use in a run, so that it, rather than the broker, may have set the pace.", ref), d.commands)
	return b.writeTo(w)
}
