package plots

import (
	"fmt"
	"html"
	"image/color"
	"math"
	"strings"
	"unicode/utf8"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/text"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// TokenValue is one response token for the token visualisation (SPEC §8):
// its text as decoded (leading spaces and newlines included), its value Φ,
// and whether the mask kept it.
type TokenValue struct {
	Text  string
	Value float64
	Kept  bool
}

// copyTokens validates tokens and resolves the colour limit: limit ≤ 0
// means the largest |Value| (1 if all are 0).
func copyTokens(tokens []TokenValue, limit float64) ([]TokenValue, float64, error) {
	if len(tokens) == 0 {
		return nil, 0, fmt.Errorf("plots: tokens: %w", plotter.ErrNoData)
	}
	if err := checkFloat("limit", limit); err != nil {
		return nil, 0, err
	}
	out := make([]TokenValue, len(tokens))
	maxAbs := 0.0
	for i, t := range tokens {
		if err := checkFloat(fmt.Sprintf("tokens[%d] %q: Value", i, t.Text), t.Value); err != nil {
			return nil, 0, err
		}
		if !utf8.ValidString(t.Text) {
			return nil, 0, fmt.Errorf("plots: tokens[%d]: text %q is not valid UTF-8", i, t.Text)
		}
		out[i] = t
		maxAbs = math.Max(maxAbs, math.Abs(t.Value))
	}
	if limit <= 0 {
		limit = maxAbs
	}
	if limit == 0 {
		limit = 1
	}
	return out, limit, nil
}

// hexColor formats c as #rrggbb.
func hexColor(c color.Color) string {
	n := color.NRGBAModel.Convert(c).(color.NRGBA)
	return fmt.Sprintf("#%02x%02x%02x", n.R, n.G, n.B)
}

// TokenHTML renders the tokens as an HTML fragment (a <div>) for a
// notebook or a report: each token is a <span> whose background is its
// value on the diverging map (blue < 0 < red, white at 0, saturating at
// ±limit; limit ≤ 0 uses the largest |Value|), whose title attribute holds
// the value, and which is underlined when kept. Text is HTML-escaped; a
// newline shows as ↵ followed by a line break. A one-line key precedes the
// tokens.
//
// It returns an error if tokens is empty, a value or limit is NaN or ±Inf,
// or a text is not valid UTF-8.
func TokenHTML(tokens []TokenValue, limit float64) (string, error) {
	toks, limit, err := copyTokens(tokens, limit)
	if err != nil {
		return "", err
	}
	cm := Diverging(limit).(*anchorMap)
	var b strings.Builder
	b.WriteString(`<div class="alphatoken-tokens" style="font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,'Liberation Mono',monospace;font-size:13px;line-height:1.9;color:#000;background:#fff;padding:4px">`)
	fmt.Fprintf(&b, `<div style="font-family:sans-serif;font-size:12px;margin-bottom:4px">token value Φ: `+
		`<span style="display:inline-block;width:120px;height:10px;vertical-align:middle;border:1px solid #555;background:linear-gradient(to right,%s)"></span> `+
		`%s … 0 … +%s; <span style="border-bottom:2px solid #000">underlined</span> = kept</div>`,
		gradientStops(), html.EscapeString(formatSigned(-limit)), html.EscapeString(formatValue(limit)))
	b.WriteString(`<div style="white-space:pre-wrap;word-break:break-word">`)
	for _, t := range toks {
		bg := cm.clamped(t.Value)
		style := "background-color:" + hexColor(bg)
		if ink := inkFor(bg); ink != color.Black {
			style += ";color:#fff"
		}
		if t.Kept {
			style += ";border-bottom:2px solid #000"
		}
		fmt.Fprintf(&b, `<span style="%s" title="%s">`, style, formatValue(t.Value))
		txt := strings.ReplaceAll(t.Text, "\r", "")
		for i, seg := range strings.Split(txt, "\n") {
			if i > 0 {
				b.WriteString("↵<br>")
			}
			b.WriteString(html.EscapeString(seg))
		}
		b.WriteString("</span>")
	}
	b.WriteString("</div></div>")
	return b.String(), nil
}

// gradientStops lists the diverging map's anchors for a CSS gradient.
func gradientStops() string {
	hs := make([]string, len(rdBuAnchors))
	for i, c := range rdBuAnchors {
		hs[i] = hexColor(c)
	}
	return strings.Join(hs, ",")
}

func formatValue(v float64) string { return fmt.Sprintf("%.4g", v) }

func formatSigned(v float64) string {
	s := formatValue(v)
	return strings.Replace(s, "-", "−", 1)
}

// TokenPlot draws the tokens as coloured boxes of monospaced text wrapped
// over lines of the given width, for PNG/SVG export: the colours, the
// limit and the error conditions are those of TokenHTML; kept tokens are
// underlined, a newline shows as ¶ and breaks the line, and a colour key
// closes the figure. It returns the plot and the height, in inches, that
// the wrapped text needs at widthInches; render at that size, e.g.
//
//	p, h, err := plots.TokenPlot("Top-ρ, example 3", toks, 0, 8)
//	...
//	err = plots.Save(p, 8, h, "out/tokens_ex3")
//
// Characters missing from Liberation Mono (most CJK, emoji) show as boxes
// in the PNG; the HTML has no such limit.
func TokenPlot(title string, tokens []TokenValue, limit, widthInches float64) (*plot.Plot, float64, error) {
	toks, limit, err := copyTokens(tokens, limit)
	if err != nil {
		return nil, 0, err
	}
	if err := checkFloat("widthInches", widthInches); err != nil {
		return nil, 0, err
	}
	tt := newTokenText(toks, limit)
	if need := tt.minWidth() + 2*tt.Margin; vg.Length(widthInches)*vg.Inch < need {
		return nil, 0, fmt.Errorf("plots: widthInches = %v, want ≥ %.2f: %w", widthInches, float64(need/vg.Inch), ErrRange)
	}
	p := newPlot(title, "", "")
	p.HideAxes()
	p.X.Padding, p.Y.Padding = 0, 0
	p.Add(tt)
	h := tt.height(vg.Length(widthInches)*vg.Inch - 2*tt.Margin)
	if title != "" {
		h += p.Title.TextStyle.Height(title) + p.Title.Padding
	}
	return p, float64(h / vg.Inch), nil
}

// tokenText is a plot.Plotter that lays tokens out as wrapped,
// coloured boxes over its whole canvas, with a colour key at the bottom.
type tokenText struct {
	tokens []TokenValue
	cm     *anchorMap
	limit  float64

	Style  text.Style // token text (monospace)
	Key    text.Style // colour key text
	Margin vg.Length  // around the text block
	PadX   vg.Length  // inside each box, left and right
	Gap    vg.Length  // between boxes
	Lead   vg.Length  // between lines
}

func newTokenText(toks []TokenValue, limit float64) *tokenText {
	sty := textStyle(11)
	sty.Font = font.From(MonoFont, 11)
	sty.XAlign, sty.YAlign = draw.XLeft, draw.YBottom
	key := textStyle(LegendSize)
	return &tokenText{
		tokens: toks,
		cm:     Diverging(limit).(*anchorMap),
		limit:  limit,
		Style:  sty,
		Key:    key,
		Margin: vg.Points(6),
		PadX:   vg.Points(1.5),
		Gap:    vg.Points(1.5),
		Lead:   vg.Points(5),
	}
}

// tokenBox is one laid-out piece of a token.
type tokenBox struct {
	x    vg.Length // left edge, from the block's left
	line int
	w    vg.Length
	text string
	tok  int
}

func (t *tokenText) boxHeight() vg.Length {
	e := t.Style.FontExtents()
	return e.Ascent + e.Descent + vg.Points(3)
}

func (t *tokenText) lineHeight() vg.Length { return t.boxHeight() + t.Lead }

func (t *tokenText) keyHeight() vg.Length {
	return vg.Points(10) + t.Key.FontExtents().Height + vg.Points(14)
}

// minWidth is the narrowest text block the key fits in.
func (t *tokenText) minWidth() vg.Length {
	return t.keyWidth()
}

// layout wraps the tokens at width and returns the boxes and the number of
// lines.
func (t *tokenText) layout(width vg.Length) ([]tokenBox, int) {
	var boxes []tokenBox
	x, line := vg.Length(0), 0
	place := func(s string, tok int) {
		for s != "" {
			w := t.Style.Width(s) + 2*t.PadX
			if x > 0 && x+w > width {
				x, line = 0, line+1
			}
			if w <= width {
				boxes = append(boxes, tokenBox{x: x, line: line, w: w, text: s, tok: tok})
				x += w + t.Gap
				return
			}
			// A piece wider than the line: split at the last rune that fits.
			cut, acc := 0, 2*t.PadX
			for i, r := range s {
				rw := t.Style.Width(string(r))
				if acc+rw > width && i > 0 {
					break
				}
				acc += rw
				cut = i + utf8.RuneLen(r)
			}
			boxes = append(boxes, tokenBox{x: x, line: line, w: acc, text: s[:cut], tok: tok})
			s = s[cut:]
			x, line = 0, line+1
		}
	}
	for i, tk := range t.tokens {
		txt := strings.ReplaceAll(strings.ReplaceAll(tk.Text, "\r", ""), "\t", "    ")
		segs := strings.Split(txt, "\n")
		for k, seg := range segs {
			if k < len(segs)-1 {
				seg += "¶"
			}
			if seg == "" {
				// An empty token still gets a thin box, so it is visible.
				if k == 0 && len(segs) == 1 {
					place(" ", i)
				}
			} else {
				place(seg, i)
			}
			if k < len(segs)-1 {
				x, line = 0, line+1
			}
		}
	}
	return boxes, line + 1
}

// height is the canvas height the tokens need when the text block is
// width wide.
func (t *tokenText) height(width vg.Length) vg.Length {
	_, lines := t.layout(width)
	return 2*t.Margin + vg.Length(lines)*t.lineHeight() + t.keyHeight()
}

func (t *tokenText) Plot(c draw.Canvas, _ *plot.Plot) {
	width := c.Max.X - c.Min.X - 2*t.Margin
	boxes, _ := t.layout(width)
	left, top := c.Min.X+t.Margin, c.Max.Y-t.Margin
	bh, lh := t.boxHeight(), t.lineHeight()
	underline := draw.LineStyle{Color: color.Black, Width: vg.Points(1.6)}
	for _, b := range boxes {
		tk := t.tokens[b.tok]
		bg := t.cm.clamped(tk.Value)
		x0 := left + b.x
		y1 := top - vg.Length(b.line)*lh
		y0 := y1 - bh
		c.FillPolygon(bg, []vg.Point{{X: x0, Y: y0}, {X: x0 + b.w, Y: y0}, {X: x0 + b.w, Y: y1}, {X: x0, Y: y1}})
		sty := t.Style
		sty.Color = inkFor(bg)
		c.FillText(sty, vg.Point{X: x0 + t.PadX, Y: y0 + vg.Points(1.5)}, b.text)
		if tk.Kept {
			c.StrokeLine2(underline, x0, y0-vg.Points(1.2), x0+b.w, y0-vg.Points(1.2))
		}
	}
	t.drawKey(c, left, c.Min.Y+t.Margin)
}

func (t *tokenText) keyLabels() (lo, mid, hi, caption string) {
	return formatSigned(-t.limit), "0", "+" + formatValue(t.limit),
		"token value Φ (blue < 0 < red);  underlined = kept"
}

func (t *tokenText) keyWidth() vg.Length {
	lo, _, hi, caption := t.keyLabels()
	return t.Key.Width(lo)/2 + vg.Points(150) + t.Key.Width(hi)/2 + vg.Points(12) + t.Key.Width(caption)
}

// drawKey draws the colour scale and the caption with its bottom-left at
// (x, y).
func (t *tokenText) drawKey(c draw.Canvas, x, y vg.Length) {
	lo, mid, hi, caption := t.keyLabels()
	barW, barH := vg.Points(150), vg.Points(10)
	labelH := t.Key.FontExtents().Height
	x += t.Key.Width(lo) / 2
	by := y + labelH + vg.Points(2)
	const n = 60
	for i := range n {
		v := -t.limit + 2*t.limit*(float64(i)+0.5)/n
		xa := x + barW*vg.Length(i)/n
		xb := x + barW*vg.Length(i+1)/n + 0.3
		c.FillPolygon(t.cm.clamped(v), []vg.Point{{X: xa, Y: by}, {X: xb, Y: by}, {X: xb, Y: by + barH}, {X: xa, Y: by + barH}})
	}
	c.StrokeLines(draw.LineStyle{Color: color.Gray{Y: 0x55}, Width: vg.Points(0.5)},
		[]vg.Point{{X: x, Y: by}, {X: x + barW, Y: by}, {X: x + barW, Y: by + barH}, {X: x, Y: by + barH}, {X: x, Y: by}})
	ks := t.Key
	ks.XAlign, ks.YAlign = draw.XCenter, draw.YBottom
	c.FillText(ks, vg.Point{X: x, Y: y}, lo)
	c.FillText(ks, vg.Point{X: x + barW/2, Y: y}, mid)
	c.FillText(ks, vg.Point{X: x + barW, Y: y}, hi)
	ks.XAlign, ks.YAlign = draw.XLeft, draw.YCenter
	c.FillText(ks, vg.Point{X: x + barW + t.Key.Width(hi)/2 + vg.Points(12), Y: by + barH/2}, caption)
}
