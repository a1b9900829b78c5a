package plots

import (
	"bytes"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// PNGDPI is the resolution of PNG output: 144 dots per inch, two pixels per
// point, so a 10pt label is about 20 pixels high.
const PNGDPI = 144

// Figure is anything that draws itself onto a canvas: a *plot.Plot, a
// *Panels (aligned multi-panel figure) or a *ColorBarPlot.
type Figure interface {
	Draw(c draw.Canvas)
}

var (
	_ Figure = (*plot.Plot)(nil)
	_ Figure = (*Panels)(nil)
	_ Figure = (*ColorBarPlot)(nil)
)

// writerTo draws f on a new canvas of the given size and format ("png",
// "svg", or any format gonum registers: "pdf", "eps", "jpg", "tif").
// PNG uses PNGDPI.
func writerTo(f Figure, w, h vg.Length, format string) (io.WriterTo, error) {
	if f == nil {
		return nil, errors.New("plots: nil figure")
	}
	if !(w > 0) || !(h > 0) || math.IsInf(float64(w), 0) || math.IsInf(float64(h), 0) {
		return nil, fmt.Errorf("plots: figure size %v×%v: want positive and finite: %w", w, h, ErrRange)
	}
	format = strings.ToLower(strings.TrimPrefix(format, "."))
	var c vg.CanvasWriterTo
	switch format {
	case "png":
		c = vgimg.PngCanvas{Canvas: vgimg.NewWith(
			vgimg.UseWH(w, h), vgimg.UseDPI(PNGDPI), vgimg.UseBackgroundColor(color.White))}
	case "svg":
		c = vgsvg.New(w, h)
	default:
		var err error
		c, err = draw.NewFormattedCanvas(w, h, format)
		if err != nil {
			return nil, fmt.Errorf("plots: %w", err)
		}
	}
	f.Draw(draw.New(c))
	return c, nil
}

func render(f Figure, widthInches, heightInches float64, format string) ([]byte, error) {
	wt, err := writerTo(f, vg.Length(widthInches)*vg.Inch, vg.Length(heightInches)*vg.Inch, format)
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, fmt.Errorf("plots: encoding %s: %w", format, err)
	}
	return buf.Bytes(), nil
}

// PNG renders f at widthInches × heightInches (PNGDPI) and returns the PNG
// bytes, e.g. for gonbui.DisplayPNG in a notebook.
func PNG(f Figure, widthInches, heightInches float64) ([]byte, error) {
	return render(f, widthInches, heightInches, "png")
}

// SVG renders f at widthInches × heightInches and returns the SVG bytes,
// e.g. for gonbui.DisplaySVG in a notebook.
func SVG(f Figure, widthInches, heightInches float64) ([]byte, error) {
	return render(f, widthInches, heightInches, "svg")
}

// WriteFile renders f into path, choosing the format from the extension
// (.png, .svg, .pdf, .eps, .jpg, .tif). It creates missing directories and
// writes a temporary file in the same directory that it renames into place,
// so a reader never sees a partial figure.
func WriteFile(f Figure, widthInches, heightInches float64, path string) error {
	ext := filepath.Ext(path)
	if ext == "" {
		return fmt.Errorf("plots: %s: no file extension to choose a format", path)
	}
	b, err := render(f, widthInches, heightInches, ext)
	if err != nil {
		return err
	}
	return writeAtomic(path, b)
}

// Save writes f as stem.png and stem.svg (see WriteFile). The stem may
// include directories, which are created.
func Save(f Figure, widthInches, heightInches float64, stem string) error {
	for _, ext := range []string{".png", ".svg"} {
		if err := WriteFile(f, widthInches, heightInches, stem+ext); err != nil {
			return err
		}
	}
	return nil
}

func writeAtomic(path string, b []byte) (err error) {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if _, err = tmp.Write(b); err != nil {
		return fmt.Errorf("plots: writing %s: %w", path, err)
	}
	if err = tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	if err = tmp.Close(); err != nil {
		return fmt.Errorf("plots: writing %s: %w", path, err)
	}
	if err = os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("plots: %w", err)
	}
	return nil
}

// LegendEntry is one entry of a figure-level legend: a name and the
// thumbnails (lines, glyphs) that draw its sample.
type LegendEntry struct {
	Name   string
	Thumbs []plot.Thumbnailer
}

// Panels is a multi-panel figure: plots on a grid whose data areas are
// aligned with plot.Align, under an optional title and a one-row legend
// shared by all panels.
type Panels struct {
	// Title is drawn centred above the panels; empty for none.
	Title string
	// TitleStyle styles Title.
	TitleStyle text.Style

	// Plots holds the panels, row-major. Every row has the same length;
	// nil entries leave an empty tile.
	Plots [][]*plot.Plot

	// Legend, if not empty, is drawn as one centred row below the title.
	Legend []LegendEntry
	// LegendStyle styles the legend text.
	LegendStyle text.Style

	// Pad is the margin around the figure; PadX and PadY separate columns
	// and rows.
	Pad, PadX, PadY vg.Length
}

// newGrid allocates the rows × cols cells for n panels; cols <= 0 picks
// min(n, 3) columns.
func newGrid(n, cols int) ([][]*plot.Plot, int) {
	if cols <= 0 {
		cols = min(n, 3)
	}
	grid := make([][]*plot.Plot, (n+cols-1)/cols)
	for r := range grid {
		grid[r] = make([]*plot.Plot, cols)
	}
	return grid, cols
}

// Grid lays panels out row-major in cols columns (cols <= 0: min(n, 3)), for NewPanels; the cells
// after the last panel stay empty.
func Grid(panels []*plot.Plot, cols int) [][]*plot.Plot {
	grid, cols := newGrid(len(panels), cols)
	for i, p := range panels {
		grid[i/cols][i%cols] = p
	}
	return grid
}

// NewPanels returns a figure laying out plots (row-major) with the package's
// default styles.
func NewPanels(title string, plots [][]*plot.Plot) *Panels {
	ts := textStyle(TitleSize + 1)
	ts.XAlign, ts.YAlign = draw.XCenter, draw.YTop
	return &Panels{
		Title:       title,
		TitleStyle:  ts,
		Plots:       plots,
		LegendStyle: textStyle(LegendSize),
		Pad:         vg.Points(4),
		PadX:        vg.Points(14),
		PadY:        vg.Points(10),
	}
}

// Draw draws the title, the legend and the aligned panels on c. It panics,
// like plot.Align, if the rows of Plots have different lengths.
func (f *Panels) Draw(c draw.Canvas) {
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	c = draw.Crop(c, f.Pad, -f.Pad, f.Pad, -f.Pad)
	if f.Title != "" {
		c.FillText(f.TitleStyle, vg.Point{X: c.Center().X, Y: c.Max.Y}, f.Title)
		c.Max.Y -= f.TitleStyle.Height(f.Title) + vg.Points(4)
	}
	if len(f.Legend) > 0 {
		c.Max.Y -= drawLegendRow(c, f.LegendStyle, f.Legend) + vg.Points(4)
	}
	if len(f.Plots) == 0 {
		return
	}
	tiles := draw.Tiles{Rows: len(f.Plots), Cols: len(f.Plots[0]), PadX: f.PadX, PadY: f.PadY}
	canvases := plot.Align(f.Plots, tiles, c)
	for j, row := range f.Plots {
		for i, p := range row {
			if p != nil {
				p.Draw(canvases[j][i])
			}
		}
	}
}

// WriterTo renders the figure at w × h in the given format ("png", "svg",
// "pdf", ...), like plot.Plot.WriterTo.
func (f *Panels) WriterTo(w, h vg.Length, format string) (io.WriterTo, error) {
	return writerTo(f, w, h, format)
}

// Save writes the figure to file, the format chosen by its extension, like
// plot.Plot.Save (but atomically, creating directories).
func (f *Panels) Save(w, h vg.Length, file string) error {
	return WriteFile(f, float64(w/vg.Inch), float64(h/vg.Inch), file)
}

// drawLegendRow draws entries side by side, centred at the top of c, and
// returns the height it used.
func drawLegendRow(c draw.Canvas, sty text.Style, entries []LegendEntry) vg.Length {
	thumbW := vg.Points(22)
	gap := vg.Points(4)
	sep := vg.Points(16)
	h := sty.FontExtents().Height
	total := vg.Length(0)
	for i, e := range entries {
		if i > 0 {
			total += sep
		}
		total += thumbW + gap + sty.Width(e.Name)
	}
	x := c.Center().X - total/2
	top := c.Max.Y
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YCenter
	for _, e := range entries {
		thumb := draw.Canvas{Canvas: c.Canvas, Rectangle: vg.Rectangle{
			Min: vg.Point{X: x, Y: top - h},
			Max: vg.Point{X: x + thumbW, Y: top},
		}}
		for _, t := range e.Thumbs {
			t.Thumbnail(&thumb)
		}
		x += thumbW + gap
		c.FillText(sty, vg.Point{X: x, Y: top - h/2}, e.Name)
		x += sty.Width(e.Name) + sep
	}
	return h
}

// ColorBarPlot is a plot with a vertical colour bar on its right, the bar's
// height matching the plot's data area.
type ColorBarPlot struct {
	// Plot is the main plot.
	Plot *plot.Plot
	// Bar is the colour bar: a plot holding a vertical plotter.ColorBar,
	// whose Y axis labels the colour scale.
	Bar *plot.Plot
	// BarWidth is the width of the colour-bar column, tick labels and axis
	// label included.
	BarWidth vg.Length
}

// newColorBarPlot returns p with a colour bar for cm labelled label.
func newColorBarPlot(p *plot.Plot, cm *anchorMap, label string) *ColorBarPlot {
	bar := newPlot("", "", label)
	bar.Title.Text = ""
	bar.HideX()
	bar.X.Padding = 0
	bar.Y.Padding = 0
	bar.X.Label.Text = ""
	bar.Add(&colorBar{cm: cm})
	return &ColorBarPlot{Plot: p, Bar: bar, BarWidth: vg.Points(80)}
}

// Draw draws the plot and its colour bar on c.
func (f *ColorBarPlot) Draw(c draw.Canvas) {
	c.SetColor(color.White)
	c.Fill(c.Rectangle.Path())
	c = draw.Crop(c, vg.Points(4), 0, vg.Points(2), -vg.Points(2))
	main := c
	main.Max.X -= f.BarWidth
	f.Plot.Draw(main)
	data := f.Plot.DataCanvas(main)
	bar := c
	bar.Min.X = main.Max.X + vg.Points(8)
	bar.Max.X -= vg.Points(4)
	// The bar plot keeps its axis on the left and uses a 12pt-wide strip
	// on the right for the colours: shift its canvas so the strip is there.
	bar.Min.Y, bar.Max.Y = data.Min.Y, data.Max.Y
	bd := f.Bar.DataCanvas(bar)
	const stripW = 12
	bar.Max.X -= bd.Max.X - bd.Min.X - vg.Points(stripW)
	f.Bar.Draw(bar)
}

// WriterTo renders the figure at w × h in the given format, like
// plot.Plot.WriterTo.
func (f *ColorBarPlot) WriterTo(w, h vg.Length, format string) (io.WriterTo, error) {
	return writerTo(f, w, h, format)
}

// Save writes the figure to file, the format chosen by its extension.
func (f *ColorBarPlot) Save(w, h vg.Length, file string) error {
	return WriteFile(f, float64(w/vg.Inch), float64(h/vg.Inch), file)
}

// colorBar draws a vertical colour gradient over the data area, in data
// coordinates x ∈ [0, 1], y ∈ [min, max]. Unlike plotter.ColorBar it
// draws vector strips, so SVG output stays sharp.
type colorBar struct {
	cm *anchorMap
}

func (b *colorBar) Plot(c draw.Canvas, p *plot.Plot) {
	const n = 128
	lo, hi := b.cm.Min(), b.cm.Max()
	for i := range n {
		v0 := lo + (hi-lo)*float64(i)/n
		v1 := lo + (hi-lo)*float64(i+1)/n
		y0, y1 := c.Y(p.Y.Norm(v0)), c.Y(p.Y.Norm(v1))
		if i < n-1 {
			y1 += 0.3 // overlap a hair to avoid seams in rasterisers
		}
		c.SetColor(b.cm.clamped((v0 + v1) / 2))
		c.Fill(rectPath(c.Min.X, y0, c.Max.X, y1))
	}
	c.SetLineStyle(draw.LineStyle{Color: color.Black, Width: vg.Points(0.5)})
	c.Stroke(rectPath(c.Min.X, c.Min.Y, c.Max.X, c.Max.Y))
}

func (b *colorBar) DataRange() (xmin, xmax, ymin, ymax float64) {
	return 0, 1, b.cm.Min(), b.cm.Max()
}

func rectPath(x0, y0, x1, y1 vg.Length) vg.Path {
	var p vg.Path
	p.Move(vg.Point{X: x0, Y: y0})
	p.Line(vg.Point{X: x1, Y: y0})
	p.Line(vg.Point{X: x1, Y: y1})
	p.Line(vg.Point{X: x0, Y: y1})
	p.Close()
	return p
}
