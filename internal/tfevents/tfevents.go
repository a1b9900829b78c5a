// Package tfevents writes and reads TensorBoard event files (events.out.tfevents.*), so that a
// training run's metrics show in TensorBoard (or anything that reads its format) without Python.
//
// A file is a sequence of records (TensorFlow's TFRecord framing):
//
//	uint64 length (little endian) | uint32 masked CRC32-C of the length bytes | data | uint32 masked CRC32-C of data
//	masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8
//
// and each record's data is an Event protocol buffer (tensorflow/core/util/event.proto):
//
//	Event   { double wall_time = 1; int64 step = 2; string file_version = 3; Summary summary = 5; }
//	Summary { repeated Value value = 1; }
//	Value   { string tag = 1; float simple_value = 2; }
//
// The first event of a file carries file_version "brain.Event:2"; each later one, a step's scalars.
// TensorBoard reads simple_value scalars as its Scalars dashboard. The encoding uses
// google.golang.org/protobuf/encoding/protowire (no generated code).
package tfevents

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/pkg/errors"
	"google.golang.org/protobuf/encoding/protowire"

	"github.com/alphatoken/alphatoken/internal/atomicfile"
)

// FileVersion is the file_version of the first event of every file.
const FileVersion = "brain.Event:2"

// Prefix starts the name of every event file.
const Prefix = "events.out.tfevents."

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

func maskedCRC(b []byte) uint32 {
	c := crc32.Checksum(b, castagnoli)
	return ((c >> 15) | (c << 17)) + 0xa282ead8
}

// Scalar is one tagged value of an event.
type Scalar struct {
	Tag   string
	Value float32
}

// Event is one decoded event: either the file-version header or a step's scalars.
type Event struct {
	WallTime    float64
	Step        int64
	FileVersion string
	Scalars     []Scalar
}

// encode renders e as an Event protocol buffer.
func (e *Event) encode() []byte {
	var b []byte
	b = protowire.AppendTag(b, 1, protowire.Fixed64Type)
	b = protowire.AppendFixed64(b, math.Float64bits(e.WallTime))
	if e.Step != 0 {
		b = protowire.AppendTag(b, 2, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(e.Step))
	}
	if e.FileVersion != "" {
		b = protowire.AppendTag(b, 3, protowire.BytesType)
		b = protowire.AppendString(b, e.FileVersion)
	}
	if len(e.Scalars) > 0 {
		var summary []byte
		for _, s := range e.Scalars {
			var v []byte
			v = protowire.AppendTag(v, 1, protowire.BytesType)
			v = protowire.AppendString(v, s.Tag)
			v = protowire.AppendTag(v, 2, protowire.Fixed32Type)
			v = protowire.AppendFixed32(v, math.Float32bits(s.Value))
			summary = protowire.AppendTag(summary, 1, protowire.BytesType)
			summary = protowire.AppendBytes(summary, v)
		}
		b = protowire.AppendTag(b, 5, protowire.BytesType)
		b = protowire.AppendBytes(b, summary)
	}
	return b
}

// appendRecord frames data as a TFRecord.
func appendRecord(out, data []byte) []byte {
	var head [8]byte
	binary.LittleEndian.PutUint64(head[:], uint64(len(data)))
	out = append(out, head[:]...)
	out = binary.LittleEndian.AppendUint32(out, maskedCRC(head[:]))
	out = append(out, data...)
	return binary.LittleEndian.AppendUint32(out, maskedCRC(data))
}

// Writer appends events to one new file in a directory.
type Writer struct {
	path string
	f    *os.File
	w    *bufio.Writer
}

var fileCounter atomic.Int64

// NewWriter creates dir (if needed) and a new event file in it, named as TensorFlow names them
// (events.out.tfevents.<unix seconds>.<host>.<pid>.<n>), and writes the file-version event.
func NewWriter(dir string) (*Writer, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, errors.Wrapf(err, "tfevents: creating %s", dir)
	}
	host, _ := os.Hostname()
	host = strings.NewReplacer("/", "_", string(filepath.Separator), "_").Replace(host)
	now := time.Now()
	name := fmt.Sprintf("%s%d.%s.%d.%d", Prefix, now.Unix(), host, os.Getpid(), fileCounter.Add(1))
	p := filepath.Join(dir, name)
	f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, errors.Wrap(err, "tfevents")
	}
	w := &Writer{path: p, f: f, w: bufio.NewWriter(f)}
	head := Event{WallTime: float64(now.UnixNano()) / 1e9, FileVersion: FileVersion}
	if _, err := w.w.Write(appendRecord(nil, head.encode())); err != nil {
		f.Close()
		return nil, errors.Wrapf(err, "tfevents: writing %s", p)
	}
	return w, w.Flush()
}

// Path is the file being written.
func (w *Writer) Path() string { return w.path }

// WriteScalars appends one event with the scalars of a step (sorted by tag) at wall time t.
func (w *Writer) WriteScalars(step int64, t time.Time, scalars map[string]float64) error {
	e := Event{WallTime: float64(t.UnixNano()) / 1e9, Step: step}
	tags := make([]string, 0, len(scalars))
	for tag := range scalars {
		tags = append(tags, tag)
	}
	sort.Strings(tags)
	for _, tag := range tags {
		e.Scalars = append(e.Scalars, Scalar{Tag: tag, Value: float32(scalars[tag])})
	}
	if _, err := w.w.Write(appendRecord(nil, e.encode())); err != nil {
		return errors.Wrapf(err, "tfevents: writing %s", w.path)
	}
	return nil
}

// Flush writes buffered events to the file (TensorBoard then sees them).
func (w *Writer) Flush() error {
	if err := w.w.Flush(); err != nil {
		return errors.Wrapf(err, "tfevents: writing %s", w.path)
	}
	return nil
}

// Close flushes and closes the file.
func (w *Writer) Close() error {
	err := w.Flush()
	if cerr := w.f.Close(); err == nil && cerr != nil {
		err = errors.Wrapf(cerr, "tfevents: closing %s", w.path)
	}
	return err
}

// ErrTruncated reports a file whose last record is incomplete (a writer that died mid-record);
// ReadFile returns the complete events before it.
var ErrTruncated = errors.New("tfevents: truncated record")

// ReadFile decodes every event of a file, checking both CRCs of every record.
func ReadFile(path string) ([]Event, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, errors.Wrap(err, "tfevents")
	}
	return Decode(raw, path)
}

// Decode decodes the records of an event file's content (name is for errors).
func Decode(raw []byte, name string) ([]Event, error) {
	recs, err := decodeRecords(raw, name)
	events := make([]Event, len(recs))
	for i, r := range recs {
		events[i] = r.event
	}
	return events, err
}

// record is one record's data and its decoded event.
type record struct {
	data  []byte
	event Event
}

func decodeRecords(raw []byte, name string) ([]record, error) {
	var events []record
	r := bytes.NewReader(raw)
	for off := 0; off < len(raw); {
		var head [12]byte
		if _, err := io.ReadFull(r, head[:]); err != nil {
			return events, errors.WithMessagef(ErrTruncated, "%s at byte %d", name, off)
		}
		n := binary.LittleEndian.Uint64(head[:8])
		if maskedCRC(head[:8]) != binary.LittleEndian.Uint32(head[8:]) {
			return events, errors.Errorf("tfevents: %s: record at byte %d: length CRC mismatch", name, off)
		}
		if n > uint64(r.Len()) || uint64(r.Len())-n < 4 {
			return events, errors.WithMessagef(ErrTruncated, "%s at byte %d (length %d)", name, off, n)
		}
		data := make([]byte, n)
		_, _ = io.ReadFull(r, data)
		var crc [4]byte
		_, _ = io.ReadFull(r, crc[:])
		if maskedCRC(data) != binary.LittleEndian.Uint32(crc[:]) {
			return events, errors.Errorf("tfevents: %s: record at byte %d: data CRC mismatch", name, off)
		}
		e, err := decodeEvent(data)
		if err != nil {
			return events, errors.WithMessagef(err, "tfevents: %s: record at byte %d", name, off)
		}
		events = append(events, record{data, e})
		off += 12 + int(n) + 4
	}
	return events, nil
}

func decodeEvent(b []byte) (Event, error) {
	var e Event
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
		switch {
		case num == 1 && typ == protowire.Fixed64Type:
			e.WallTime = math.Float64frombits(x)
		case num == 2 && typ == protowire.VarintType:
			e.Step = int64(x)
		case num == 3 && typ == protowire.BytesType:
			e.FileVersion = string(v)
		case num == 5 && typ == protowire.BytesType:
			return fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				if num != 1 || typ != protowire.BytesType {
					return nil
				}
				var s Scalar
				err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error {
					switch {
					case num == 1 && typ == protowire.BytesType:
						s.Tag = string(v)
					case num == 2 && typ == protowire.Fixed32Type:
						s.Value = math.Float32frombits(uint32(x))
					}
					return nil
				})
				e.Scalars = append(e.Scalars, s)
				return err
			})
		}
		return nil
	})
	return e, err
}

// fields walks the fields of a protocol buffer message: v is a bytes field's content, x a numeric
// field's value.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, x uint64) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errors.Wrap(protowire.ParseError(n), "tfevents: bad protobuf tag")
		}
		b = b[n:]
		var v []byte
		var x uint64
		switch typ {
		case protowire.VarintType:
			x, n = protowire.ConsumeVarint(b)
		case protowire.Fixed32Type:
			var x32 uint32
			x32, n = protowire.ConsumeFixed32(b)
			x = uint64(x32)
		case protowire.Fixed64Type:
			x, n = protowire.ConsumeFixed64(b)
		case protowire.BytesType:
			v, n = protowire.ConsumeBytes(b)
		default:
			n = protowire.ConsumeFieldValue(num, typ, b)
		}
		if n < 0 {
			return errors.Wrapf(protowire.ParseError(n), "tfevents: bad protobuf field %d", num)
		}
		b = b[n:]
		if err := fn(num, typ, v, x); err != nil {
			return err
		}
	}
	return nil
}

// Files lists the event files of dir, by name (oldest first: names start with the creation time).
func Files(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil, nil
	}
	if err != nil {
		return nil, errors.Wrap(err, "tfevents")
	}
	var out []string
	for _, e := range entries {
		if !e.IsDir() && strings.HasPrefix(e.Name(), Prefix) {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out, nil
}

// Truncate drops, from every event file of dir, the events after step maxStep (what a run resumed
// from maxStep will log again), rewriting each file atomically with the other records as they
// were; a file left with nothing but its header is removed. An incomplete last record (a writer
// that died mid-write) is dropped too.
func Truncate(dir string, maxStep int64) error {
	files, err := Files(dir)
	if err != nil {
		return err
	}
	for _, p := range files {
		raw, err := os.ReadFile(p)
		if err != nil {
			return errors.Wrap(err, "tfevents")
		}
		recs, err := decodeRecords(raw, p)
		if err != nil && !errors.Is(err, ErrTruncated) {
			return err
		}
		var keep []byte
		scalars, dropped := 0, err != nil
		for _, r := range recs {
			if r.event.FileVersion == "" && r.event.Step > maxStep {
				dropped = true
				continue
			}
			if r.event.FileVersion == "" {
				scalars++
			}
			keep = appendRecord(keep, r.data) // the record as written (fields this package ignores kept)
		}
		switch {
		case scalars == 0:
			if err := os.Remove(p); err != nil {
				return errors.Wrap(err, "tfevents")
			}
		case dropped:
			if err := atomicfile.WriteBytes(p, keep); err != nil {
				return errors.WithMessage(err, "tfevents")
			}
		}
	}
	return nil
}
