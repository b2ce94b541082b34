package bench

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

var (
	barColor   = color.RGBA{R: 0x2b, G: 0x6c, B: 0xb0, A: 0xff}
	worseColor = color.RGBA{R: 0xc0, G: 0x39, B: 0x2b, A: 0xff}
	parityGrey = color.RGBA{R: 0x55, G: 0x55, B: 0x55, A: 0xff}
)

// chartClip is the largest ratio drawn to scale.
const chartClip = 4.0

// Chart draws the p50 ratio of every metric as a horizontal bar, with a
// line at 1 (parity): blue bars end left of it (stockade better), red right
// of it. Metrics without a ratio get an empty bar and "(unavailable)".
func (r *Results) Chart(path string) error {
	n := len(r.Metrics)
	if n == 0 {
		return fmt.Errorf("no metrics to draw")
	}
	p := plot.New()
	p.Title.Text = "stockade / baseline, p50 (lower is better)"
	p.Title.Padding = vg.Points(8)
	p.X.Label.Text = "ratio"
	p.X.Min = 0

	// Bars are drawn bottom-up: reverse so the chart reads like the table.
	better, worse := make(plotter.Values, n), make(plotter.Values, n)
	names := make([]string, n)
	maxRatio := 1.0
	for i, m := range r.Metrics {
		row := n - 1 - i
		names[row] = m.Group + ": " + m.Name
		v := float64(m.RatioP50)
		if math.IsNaN(v) {
			if m.Runc.NotApplicable != "" {
				names[row] += " (no baseline)"
			} else {
				names[row] += " (unavailable)"
			}
			continue
		}
		// One far-off ratio (a notified syscall against one failed in the
		// kernel) would squash every other bar: clip it and say so.
		if v > chartClip {
			names[row] += fmt.Sprintf(" (%.1f×, bar clipped)", v)
			v = chartClip
		}
		if v <= 1 {
			better[row] = v
		} else {
			worse[row] = v
		}
		maxRatio = math.Max(maxRatio, v)
	}
	p.X.Max = maxRatio * 1.1

	for _, set := range []struct {
		vals plotter.Values
		col  color.Color
	}{{better, barColor}, {worse, worseColor}} {
		bars, err := plotter.NewBarChart(set.vals, vg.Points(12))
		if err != nil {
			return err
		}
		bars.Horizontal = true
		bars.Color = set.col
		bars.LineStyle.Width = 0
		p.Add(bars)
	}

	parity, err := plotter.NewLine(plotter.XYs{{X: 1, Y: -0.5}, {X: 1, Y: float64(n) - 0.5}})
	if err != nil {
		return err
	}
	parity.LineStyle = draw.LineStyle{Color: parityGrey, Width: vg.Points(1), Dashes: []vg.Length{vg.Points(4), vg.Points(3)}}
	p.Add(parity)
	p.NominalY(names...)
	p.Add(plotter.NewGrid())

	height := vg.Length(n)*vg.Points(22) + vg.Points(90)
	return p.Save(11*vg.Inch, height, path)
}
