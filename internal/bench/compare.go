package bench

import (
	"fmt"
	"io"
)

// This file turns a directory of results written by scripts/bench-compare.sh
// into the Markdown tables of docs/benchmarks.md (the engine is report.go).
// Besides the files every results directory holds:
//
//	tables.tsv    name TAB title TAB description
//	scaling.tsv   base TAB base label TAB scaled TAB scaled label TAB title TAB description
//	              (SCALING=1 only; read by ScalingReport)
//
// Results are <table>/<scenario>/<broker>-<rep>.json.

const compareLegend = "Throughput is delivered messages per second (for fan-out each subscriber's copy counts), the median of the per-second samples of a run; " +
	"the cells show the median over the repetitions and their range. " +
	"Lost, summed over the repetitions: messages acknowledged (QoS 1) or sent (QoS 0) and not delivered by the end of the 2 s grace period — " +
	"for QoS 0 at an unlimited rate that counts messages a broker dropped under overload and messages still queued in it. " +
	"CPU columns are medians in percent of one core (200 = two cores). " +
	"† marks a generator that used 90% or more of the cores it could use, so that it, rather than the broker, may have set the pace."

// CompareReport renders the comparison in dir as Markdown: one table per
// line of tables.tsv, ours beside the reference broker.
func CompareReport(dir string, w io.Writer) error {
	d, tl, err := openResults(dir, "tables.tsv", 3)
	if err != nil {
		return err
	}
	var b markdown
	b.meta(d.meta)
	ours, ref := d.ours.label, d.ref.label
	for _, t := range tl {
		b.table(t[1], t[2], "Scenario", "Metric", ours+" median (min–max)", ref+" median (min–max)", ours+" / "+ref,
			"Lost "+ours+" / "+ref, "Broker CPU % "+ours+" / "+ref, "Generator CPU % "+ours+" / "+ref)
		var notes []string
		for _, s := range d.scenarios {
			o, eo := d.load(t[0], s.name, d.ours)
			r, er := d.load(t[0], s.name, d.ref)
			for _, e := range append(eo, er...) {
				notes = append(notes, fmt.Sprintf("%s: %s", s.label, e))
			}
			for i, mn := range s.metrics {
				m := CompareMetrics[mn]
				label := ""
				if i == 0 {
					label = s.label
				}
				cells := []string{label, m.cell(), o.spread(m), r.spread(m), ratio(o, r, m)}
				b.row(append(cells, firstOnly(i == 0, pairCells(o, r))...)...)
			}
		}
		b.endTable(notes)
	}
	b.commands(compareLegend, d.commands)
	return b.writeTo(w)
}

// ScalingReport renders, for each line of scaling.tsv, the throughput of
// every scenario that has one in two tables of the same run — base (the
// broker pinned to one core) and scaled (broker and load generator sharing
// the same cores) — for both brokers, with the ratio scaled / base.
func ScalingReport(dir string, w io.Writer) error {
	d, sl, err := openResults(dir, "scaling.tsv", 6)
	if err != nil {
		return err
	}
	m := CompareMetrics["throughput"]
	var b markdown
	b.meta(d.meta)
	ours, ref := d.ours.label, d.ref.label
	for _, t := range sl {
		base, baseLabel, scaled, scaledLabel := t[0], t[1], t[2], t[3]
		per := scaledLabel + " / " + baseLabel
		b.table(t[4], t[5], "Scenario",
			ours+" "+baseLabel, ours+" "+scaledLabel, ours+" "+per,
			ref+" "+baseLabel, ref+" "+scaledLabel, ref+" "+per,
			"Lost "+ours+" / "+ref+" ("+scaledLabel+")", "Broker CPU % "+ours+" / "+ref+" ("+scaledLabel+")",
			"Generator CPU % "+ours+" / "+ref+" ("+scaledLabel+")")
		var notes []string
		for _, s := range d.scenarios {
			if !s.has(m.Name) {
				continue
			}
			var sides [4]side
			for i, g := range []struct {
				table, label string
				b            brokerRef
			}{{base, baseLabel, d.ours}, {scaled, scaledLabel, d.ours}, {base, baseLabel, d.ref}, {scaled, scaledLabel, d.ref}} {
				var errs []string
				sides[i], errs = d.load(g.table, s.name, g.b)
				for _, e := range errs {
					notes = append(notes, fmt.Sprintf("%s, %s: %s", s.label, g.label, e))
				}
			}
			oBase, oScaled, rBase, rScaled := sides[0], sides[1], sides[2], sides[3]
			cells := []string{s.label, oBase.spread(m), oScaled.spread(m), ratio(oScaled, oBase, m),
				rBase.spread(m), rScaled.spread(m), ratio(rScaled, rBase, m)}
			b.row(append(cells, pairCells(oScaled, rScaled)...)...)
		}
		b.endTable(notes)
	}
	b.commands("Throughput is delivered messages per second, the median of the per-second samples of a run; "+
		"the cells show the median over the repetitions and their range. "+
		"Each ratio divides a broker's median with the cores shared by the median of the same broker pinned to one core, from the same run: "+
		"above 1, the broker turned the second core into throughput although the load generator ran on the same cores; "+
		"a broker that handles its clients on one thread stays near 1 or below. "+
		"Lost and CPU columns are those of the runs with the cores shared; CPU in percent of one core (200 = two cores). "+
		"† marks a generator that used 90% or more of the cores it could use.", d.commands)
	return b.writeTo(w)
}
