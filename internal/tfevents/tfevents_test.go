package tfevents

import (
	"encoding/json"
	"hash/crc32"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCRC32C: the checksum is CRC-32C (Castagnoli): its standard check value.
func TestCRC32C(t *testing.T) {
	if got := crc32.Checksum([]byte("123456789"), castagnoli); got != 0xE3069283 {
		t.Fatalf("crc32c = %#x", got)
	}
}

func writeSample(t *testing.T, dir string) (string, []map[string]float64) {
	t.Helper()
	w, err := NewWriter(dir)
	if err != nil {
		t.Fatal(err)
	}
	steps := []map[string]float64{
		{"train/loss": 4.5, "train/lr": 3e-4},
		{"train/loss": 3.25, "train/lr": 2.5e-4, "eval/loss": 3.5},
		{"train/loss": 2.125, "train/lr": 1e-4},
	}
	for i, s := range steps {
		if err := w.WriteScalars(int64(10*(i+1)), time.Unix(1700000000+int64(i), 0), s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w.Path(), steps
}

func TestRoundTrip(t *testing.T) {
	p, steps := writeSample(t, t.TempDir())
	if !strings.HasPrefix(filepath.Base(p), Prefix) {
		t.Fatalf("file name %s", p)
	}
	events, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 4 || events[0].FileVersion != FileVersion {
		t.Fatalf("events %+v", events)
	}
	for i, s := range steps {
		e := events[i+1]
		if e.Step != int64(10*(i+1)) || e.WallTime != float64(1700000000+i) || len(e.Scalars) != len(s) {
			t.Fatalf("event %d: %+v", i, e)
		}
		for _, sc := range e.Scalars {
			if float64(sc.Value) != float64(float32(s[sc.Tag])) {
				t.Errorf("step %d %s = %v, want %v", e.Step, sc.Tag, sc.Value, s[sc.Tag])
			}
		}
	}
}

// pyReader is an independent reader of the format (struct and a hand-written protobuf decoder; no
// TensorFlow): it checks both CRCs of every record and prints the events as JSON.
const pyReader = `
import json, struct, sys
POLY = 0x82F63B78
TABLE = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ POLY if c & 1 else c >> 1
    TABLE.append(c)
def crc32c(b):
    c = 0xFFFFFFFF
    for x in b:
        c = TABLE[(c ^ x) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF
def masked(b):
    c = crc32c(b)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & 0xFFFFFFFF
def varint(b, i):
    x = s = 0
    while True:
        y = b[i]; i += 1
        x |= (y & 0x7F) << s; s += 7
        if y < 0x80:
            return x, i
def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = varint(b, i)
        elif wt == 1:
            v = b[i:i+8]; i += 8
        elif wt == 5:
            v = b[i:i+4]; i += 4
        elif wt == 2:
            n, i = varint(b, i); v = b[i:i+n]; i += n
        else:
            raise ValueError("wire type %d" % wt)
        yield num, wt, v
out = []
data = open(sys.argv[1], "rb").read()
i = 0
while i < len(data):
    head = data[i:i+8]
    (n,) = struct.unpack("<Q", head)
    (hc,) = struct.unpack("<I", data[i+8:i+12])
    assert hc == masked(head), "length crc"
    rec = data[i+12:i+12+n]
    (dc,) = struct.unpack("<I", data[i+12+n:i+16+n])
    assert dc == masked(rec), "data crc"
    i += 16 + n
    ev = {"step": 0, "scalars": {}}
    for num, wt, v in fields(rec):
        if num == 1 and wt == 1: ev["wall_time"] = struct.unpack("<d", v)[0]
        elif num == 2 and wt == 0: ev["step"] = v
        elif num == 3 and wt == 2: ev["file_version"] = v.decode()
        elif num == 5 and wt == 2:
            for vn, vwt, val in fields(v):
                if vn != 1: continue
                tag, x = None, None
                for fn, fwt, fv in fields(val):
                    if fn == 1: tag = fv.decode()
                    elif fn == 2 and fwt == 5: x = struct.unpack("<f", fv)[0]
                ev["scalars"][tag] = x
    out.append(ev)
print(json.dumps(out))
`

// TestPythonReadsFile: an independent Python reader of the format decodes the file we wrote.
func TestPythonReadsFile(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not found")
	}
	dir := t.TempDir()
	p, steps := writeSample(t, dir)
	script := filepath.Join(dir, "read.py")
	if err := os.WriteFile(script, []byte(pyReader), 0o644); err != nil {
		t.Fatal(err)
	}
	raw, err := exec.Command(py, script, p).CombinedOutput()
	if err != nil {
		t.Fatalf("python reader: %v\n%s", err, raw)
	}
	var events []struct {
		Step        int64              `json:"step"`
		WallTime    float64            `json:"wall_time"`
		FileVersion string             `json:"file_version"`
		Scalars     map[string]float64 `json:"scalars"`
	}
	if err := json.Unmarshal(raw, &events); err != nil {
		t.Fatalf("%v: %s", err, raw)
	}
	if len(events) != 4 || events[0].FileVersion != FileVersion {
		t.Fatalf("python read %s", raw)
	}
	for i, s := range steps {
		e := events[i+1]
		if e.Step != int64(10*(i+1)) || e.WallTime != float64(1700000000+i) || len(e.Scalars) != len(s) {
			t.Fatalf("python read event %d as %+v", i, e)
		}
		for tag, v := range s {
			if e.Scalars[tag] != float64(float32(v)) {
				t.Errorf("python read step %d %s = %v, want %v", e.Step, tag, e.Scalars[tag], v)
			}
		}
	}
}

func TestCorruptionDetected(t *testing.T) {
	p, _ := writeSample(t, t.TempDir())
	raw, _ := os.ReadFile(p)
	bad := append([]byte(nil), raw...)
	bad[len(bad)-6] ^= 1 // inside the last record's data
	if _, err := Decode(bad, "x"); err == nil || !strings.Contains(err.Error(), "data CRC mismatch") {
		t.Fatalf("flipped bit: %v", err)
	}
	events, err := Decode(raw[:len(raw)-3], "x")
	if err == nil || len(events) != 3 {
		t.Fatalf("cut file: %d events, %v", len(events), err)
	}
}

// TestTruncate: a resumed run drops the events after its step; a file left empty goes away, and
// a cut last record is dropped.
func TestTruncate(t *testing.T) {
	dir := t.TempDir()
	p, _ := writeSample(t, dir) // steps 10, 20, 30
	if err := Truncate(dir, 20); err != nil {
		t.Fatal(err)
	}
	events, err := ReadFile(p)
	if err != nil || len(events) != 3 || events[2].Step != 20 {
		t.Fatalf("after Truncate(20): %+v, %v", events, err)
	}
	raw, _ := os.ReadFile(p)
	if err := os.WriteFile(p, raw[:len(raw)-5], 0o644); err != nil {
		t.Fatal(err)
	}
	if err := Truncate(dir, 100); err != nil {
		t.Fatal(err)
	}
	if events, err := ReadFile(p); err != nil || len(events) != 2 {
		t.Fatalf("after a cut record: %+v, %v", events, err)
	}
	if err := Truncate(dir, 0); err != nil {
		t.Fatal(err)
	}
	if files, _ := Files(dir); len(files) != 0 {
		t.Fatalf("files left: %v", files)
	}
}

func FuzzDecode(f *testing.F) {
	dir := f.TempDir()
	w, _ := NewWriter(dir)
	_ = w.WriteScalars(3, time.Unix(0, 0), map[string]float64{"a": 1, "b": math.Inf(1)})
	_ = w.Close()
	raw, _ := os.ReadFile(w.Path())
	f.Add(raw)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		events, err := Decode(b, "fuzz")
		if err == nil {
			var again []byte
			for _, e := range events {
				again = appendRecord(again, e.encode())
			}
			if _, err := Decode(again, "again"); err != nil {
				t.Fatalf("re-encoded events do not decode: %v", err)
			}
		}
	})
}
