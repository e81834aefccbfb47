package bench

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// WritePlot writes an SVG (or a PNG, when path ends in .png) with two panels: throughput over time (per-second
// samples) and the latency distribution (latency by percentile, the tail
// stretched: 90%, 99%, 99.9% ... are evenly spaced).
func (r *Result) WritePlot(path string) error {
	top, err := r.throughputPlot()
	if err != nil {
		return err
	}
	bottom, err := r.latencyPlot()
	if err != nil {
		return err
	}
	const w, h = 8 * vg.Inch, 9 * vg.Inch
	var c interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if strings.EqualFold(filepath.Ext(path), ".png") {
		c = vgimg.PngCanvas{Canvas: vgimg.New(w, h)}
	} else {
		c = vgsvg.New(w, h)
	}
	dc := draw.New(c)
	tiles := draw.Tiles{Rows: 2, Cols: 1, PadTop: vg.Points(6), PadBottom: vg.Points(6), PadLeft: vg.Points(6), PadRight: vg.Points(12), PadY: vg.Points(18)}
	canvases := plot.Align([][]*plot.Plot{{top}, {bottom}}, tiles, dc)
	top.Draw(canvases[0][0])
	bottom.Draw(canvases[1][0])
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := c.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (r *Result) title() string {
	c := r.Config
	if r.Scenario == Idle {
		return fmt.Sprintf("idle, MQTT %s, %d connections (%s)", c.Protocol, c.Connections, c.URL)
	}
	return fmt.Sprintf("%s, MQTT %s, QoS %d, %d B (%s)", r.Scenario, c.Protocol, c.QoS, c.PayloadSize, c.URL)
}

func (r *Result) throughputPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Throughput: " + r.title()
	p.X.Label.Text = "time since start (s)"
	p.Y.Label.Text = "messages per second"
	p.X.Min = 0
	p.Y.Min = 0
	p.Y.Tick.Marker = humanTicks{}
	p.Add(plotter.NewGrid())
	sent := make(plotter.XYs, 0, len(r.Samples)+1)
	del := make(plotter.XYs, 0, len(r.Samples)+1)
	for _, s := range r.Samples {
		sent = append(sent, plotter.XY{X: s.T, Y: s.SentPerSec})
		del = append(del, plotter.XY{X: s.T, Y: s.DeliveredPerSec})
	}
	if r.Scenario == Idle {
		p.Title.Text = "Connections: " + r.title()
		p.Y.Label.Text = "connections per second"
		sent = nil
	}
	if len(del) == 0 {
		// Shorter than one sample: plot the overall rate as a point.
		if t := r.Throughput; t != nil {
			del = append(del, plotter.XY{X: r.Elapsed, Y: t.DeliveredPerSec})
			if r.Scenario != Idle {
				sent = append(sent, plotter.XY{X: r.Elapsed, Y: t.SentPerSec})
			}
		}
	}
	if len(sent) > 0 {
		l, s, err := plotter.NewLinePoints(sent)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = color.RGBA{R: 200, G: 120, A: 255}, color.RGBA{R: 200, G: 120, A: 255}
		l.Dashes = []vg.Length{vg.Points(4), vg.Points(3)}
		p.Add(l, s)
		p.Legend.Add("sent", l, s)
	}
	if len(del) > 0 {
		l, s, err := plotter.NewLinePoints(del)
		if err != nil {
			return nil, err
		}
		l.Color, s.Color = color.RGBA{B: 200, G: 80, A: 255}, color.RGBA{B: 200, G: 80, A: 255}
		p.Add(l, s)
		label := "delivered"
		if r.Scenario == Idle {
			label = "connected"
		}
		p.Legend.Add(label, l, s)
	}
	// Shade the measurement window boundaries.
	if r.Scenario != Idle {
		for _, x := range []float64{r.Config.Warmup.Seconds(), (r.Config.Warmup + r.Config.Duration).Seconds()} {
			v, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: maxY(sent, del)}})
			if err == nil {
				v.Color = color.Gray{Y: 160}
				v.Dashes = []vg.Length{vg.Points(1), vg.Points(3)}
				p.Add(v)
			}
		}
	}
	p.Legend.Top = false // the lines run along the top; the bottom is free
	return p, nil
}

func maxY(sets ...plotter.XYs) float64 {
	m := 1.0
	for _, s := range sets {
		for _, p := range s {
			m = math.Max(m, p.Y)
		}
	}
	return m
}

// nines maps a percentile to the "number of nines" axis: 90 -> 1, 99 -> 2.
func nines(pct float64) float64 {
	if pct >= 100 {
		pct = 99.9999
	}
	return -math.Log10(1 - pct/100)
}

func (r *Result) latencyPlot() (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = "Latency distribution"
	if r.Scenario == Idle {
		p.Title.Text = "CONNECT to CONNACK latency distribution"
	}
	p.X.Label.Text = "percentile"
	p.Y.Label.Text = "latency (µs)"
	p.Add(plotter.NewGrid())
	var xys plotter.XYs
	top := 0.0
	if l := r.Latency; l != nil && l.Count > 0 {
		last := math.Log10(float64(l.Count)) // where the largest sample sits
		for _, d := range l.Distribution {
			x := math.Min(nines(d.Percentile), last)
			if d.Percentile == 100 {
				x = last
			}
			xys = append(xys, plotter.XY{X: x, Y: d.Micros})
			top = math.Max(top, x)
		}
	}
	if len(xys) > 0 {
		l, err := plotter.NewLine(xys)
		if err != nil {
			return nil, err
		}
		l.Color = color.RGBA{B: 200, G: 80, A: 255}
		l.Width = vg.Points(1.5)
		p.Add(l)
	} else {
		p.Title.Text += " (no samples)"
	}
	p.X.Min = 0
	p.X.Max = math.Max(top, 2)
	p.Y.Min = 0
	p.X.Tick.Marker = plot.TickerFunc(func(min, max float64) []plot.Tick {
		labels := []string{"0%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"}
		var t []plot.Tick
		for i, s := range labels {
			if float64(i) <= max+0.01 {
				t = append(t, plot.Tick{Value: float64(i), Label: s})
			}
		}
		return t
	})
	return p, nil
}

// humanTicks labels the default ticks as 250k, 1.5M ...
type humanTicks struct{}

func (humanTicks) Ticks(min, max float64) []plot.Tick {
	t := plot.DefaultTicks{}.Ticks(min, max)
	for i := range t {
		if t[i].Label != "" {
			t[i].Label = human(t[i].Value)
		}
	}
	return t
}
