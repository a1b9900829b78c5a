package model

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/gomlx/compute/dtypes"
	"github.com/gomlx/gomlx/core/tensors"
)

// rawSafetensors assembles a safetensors file from a header (marshalled as given) and a data
// section, without any of WriteSafetensors' checks.
func rawSafetensors(t testing.TB, header any, data []byte) []byte {
	t.Helper()
	h, err := json.Marshal(header)
	if err != nil {
		t.Fatal(err)
	}
	out := binary.LittleEndian.AppendUint64(nil, uint64(len(h)))
	return append(append(out, h...), data...)
}

// entry is one tensor of a crafted header.
func entry(dtype string, shape []int64, begin, end int64) map[string]any {
	return map[string]any{"dtype": dtype, "shape": shape, "data_offsets": []int64{begin, end}}
}

// TestReadSafetensorsRejects: each damaged or crafted file of issue 14 #1 is an error naming the
// file and (where there is one) the tensor: truncation, offsets past the end, negative or 2^62
// offsets, overlap, holes, an absurd header length, dtype or shape that do not match the bytes.
// None panics; a well-formed file with its tensors stored out of name order still reads.
func TestReadSafetensorsRejects(t *testing.T) {
	dir := t.TempDir()
	a := tensors.FromValue([][]float32{{1, 2, 3}, {4, 5, 6}}) // 24 bytes
	b := tensors.FromValue([]float32{7, 8, 9, 10})            // 16 bytes
	good := filepath.Join(dir, "good.safetensors")
	if err := WriteSafetensors(good, []NamedTensor{{"a", a}, {"b", b}}, map[string]string{"k": "v"}); err != nil {
		t.Fatal(err)
	}
	whole, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 40)
	type tc struct {
		name, want, tensor string
		file               []byte
	}
	hdr := func(ea, eb map[string]any) map[string]any { return map[string]any{"a": ea, "b": eb} }
	okA, okB := entry("F32", []int64{2, 3}, 0, 24), entry("F32", []int64{4}, 24, 40)
	cases := []tc{
		{"truncated", "past the end", "a", whole[:len(whole)-20]},
		{"offsets past the end", "past the end", "b", rawSafetensors(t, hdr(okA, entry("F32", []int64{4}, 1<<40, 1<<40+16)), data)},
		{"negative offset", "0 ≤ begin ≤ end", "a", rawSafetensors(t, hdr(entry("F32", []int64{2, 3}, -8, 16), okB), data)},
		{"2^62 offsets", "past the end", "b", rawSafetensors(t, hdr(okA, entry("F32", []int64{4}, 1<<62, 1<<62+16)), data)},
		{"end before begin", "0 ≤ begin ≤ end", "b", rawSafetensors(t, hdr(okA, entry("F32", []int64{4}, 40, 24)), data)},
		{"overlap", "overlaps", "b", rawSafetensors(t, hdr(okA, entry("F32", []int64{4}, 8, 24)), data[:24])},
		{"hole", "belong to no tensor", "b", rawSafetensors(t, hdr(okA, entry("F32", []int64{4}, 32, 48)), make([]byte, 48))},
		{"trailing bytes", "after the last tensor", "", rawSafetensors(t, hdr(okA, okB), make([]byte, 48))},
		{"shape × dtype ≠ bytes", "needs 4×4 bytes", "a", rawSafetensors(t, hdr(entry("F32", []int64{2, 2}, 0, 24), okB), data)},
		{"negative dimension", "negative dimension", "a", rawSafetensors(t, hdr(entry("F32", []int64{-2, -3}, 0, 24), okB), data)},
		{"shape overflow", "64 bits", "a", rawSafetensors(t, hdr(entry("F32", []int64{1 << 40, 1 << 40}, 0, 24), okB), data)},
		{"unknown dtype", `dtype "F8"`, "a", rawSafetensors(t, hdr(entry("F8", []int64{24}, 0, 24), okB), data)},
		{"three offsets", "[begin, end]", "a", rawSafetensors(t, map[string]any{"a": map[string]any{"dtype": "F32", "shape": []int{6}, "data_offsets": []int{0, 24, 40}}, "b": okB}, data)},
		{"no shape", "no shape", "a", rawSafetensors(t, map[string]any{"a": map[string]any{"dtype": "F32", "data_offsets": []int{0, 24}}, "b": okB}, data)},
		{"metadata not strings", "__metadata__", "", rawSafetensors(t, map[string]any{"__metadata__": map[string]any{"n": 1}, "a": okA, "b": okB}, data)},
		{"header not an object", "not a JSON object", "", rawSafetensors(t, []int{1, 2}, data)},
		{"header length absurd", "header length", "", append(binary.LittleEndian.AppendUint64(nil, 1<<40), whole[8:]...)},
		{"header length past the file", "header length", "", append(binary.LittleEndian.AppendUint64(nil, uint64(len(whole))), whole[8:]...)},
		{"shorter than 8 bytes", "too short", "", []byte{1, 0, 0}},
		{"header not JSON", "parsing the header", "", append(binary.LittleEndian.AppendUint64(nil, 4), []byte("{abc")...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, strings.ReplaceAll(c.name, " ", "_")+".safetensors")
			if err := os.WriteFile(path, c.file, 0o644); err != nil {
				t.Fatal(err)
			}
			_, _, err := ReadSafetensors(path)
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			if !strings.Contains(msg, path) || !strings.Contains(msg, c.want) || (c.tensor != "" && !strings.Contains(msg, `"`+c.tensor+`"`)) {
				t.Fatalf("want an error naming %s, tensor %q and %q; got %v", path, c.tensor, c.want, err)
			}
		})
	}
	// Stored out of name order, and an empty tensor: valid.
	swapped := filepath.Join(dir, "swapped.safetensors")
	file := rawSafetensors(t, map[string]any{"a": entry("F32", []int64{2, 3}, 16, 40), "b": entry("F32", []int64{4}, 0, 16),
		"empty": entry("I64", []int64{0, 5}, 16, 16)}, data)
	if err := os.WriteFile(swapped, file, 0o644); err != nil {
		t.Fatal(err)
	}
	ts, _, err := ReadSafetensors(swapped)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 || ts["empty"].Shape().Size() != 0 || ts["a"].Shape().DType != dtypes.Float32 {
		t.Fatalf("read %v", ts)
	}
	// The good file reads back.
	ts, meta, err := ReadSafetensors(good)
	if err != nil || meta["k"] != "v" {
		t.Fatalf("%v %v", err, meta)
	}
	if got := tensors.MustCopyFlatData[float32](ts["b"]); got[3] != 10 {
		t.Fatalf("b = %v", got)
	}
	if _, _, err := ReadSafetensors(dir); err == nil || !strings.Contains(err.Error(), "directory") {
		t.Fatalf("a directory: %v", err)
	}
}

// TestShardIndexOutside: a shard index naming files outside the checkpoint directory (issue 14
// #9: "../x.safetensors", an absolute path, a symbolic link pointing out) is refused naming the
// index and the tensor; a Hugging Face cache snapshot, whose files link to the repository's
// blobs, loads; an index that disagrees with the shards is an error naming the tensor.
func TestShardIndexOutside(t *testing.T) {
	backend := testBackend(t)
	cfg := tinyConfigs()["llama"]
	lm, err := New(backend, cfg, dtypes.Float32, 5)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	repo := filepath.Join(root, "models--org--tiny")
	snap := filepath.Join(repo, "snapshots", "abc")
	if err := lm.Save(snap, SaveOptions{MaxShardBytes: 4000}); err != nil {
		t.Fatal(err)
	}
	indexPath := filepath.Join(snap, "model.safetensors.index.json")
	var index struct {
		Metadata  map[string]any    `json:"metadata"`
		WeightMap map[string]string `json:"weight_map"`
	}
	raw, err := os.ReadFile(indexPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	// Move every shard to blobs/ and link it back, as huggingface_hub does.
	if err := os.MkdirAll(filepath.Join(repo, "blobs"), 0o755); err != nil {
		t.Fatal(err)
	}
	shards := map[string]bool{}
	for _, f := range index.WeightMap {
		shards[f] = true
	}
	for f := range shards {
		if err := os.Rename(filepath.Join(snap, f), filepath.Join(repo, "blobs", "sha-"+f)); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(filepath.Join("..", "..", "blobs", "sha-"+f), filepath.Join(snap, f)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := Load(backend, snap, dtypes.Float32); err != nil {
		t.Fatalf("a Hugging Face cache snapshot: %v", err)
	}
	outside := filepath.Join(root, "x.safetensors")
	if err := os.Link(filepath.Join(repo, "blobs", "sha-"+index.WeightMap["model.norm.weight"]), outside); err != nil {
		t.Fatal(err)
	}
	first := "model.embed_tokens.weight"
	orig := index.WeightMap[first]
	write := func(m map[string]string) {
		t.Helper()
		index.WeightMap = m
		b, _ := json.Marshal(index)
		if err := os.WriteFile(indexPath, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	with := func(name, file string) map[string]string {
		m := map[string]string{}
		for k, v := range index.WeightMap {
			m[k] = v
		}
		m[name] = file
		return m
	}
	base := with(first, orig)
	for _, c := range []struct{ file, want string }{
		{"../../../x.safetensors", "inside the checkpoint directory"},
		{outside, "inside the checkpoint directory"},
		{"config.json", "a .safetensors file"},
		{"", "a .safetensors file"},
		{"link.safetensors", "outside the checkpoint directory"},
	} {
		if c.file == "link.safetensors" {
			if err := os.Symlink(outside, filepath.Join(snap, c.file)); err != nil {
				t.Fatal(err)
			}
		}
		write(with(first, c.file))
		_, err := Load(backend, snap, dtypes.Float32)
		if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "model.safetensors.index.json") {
			t.Errorf("index maps %s to %q: want an error containing %q, got %v", first, c.file, c.want, err)
		}
	}
	// Consistent file names, but the map disagrees with the shards' contents.
	other := index.WeightMap["model.norm.weight"]
	if other == orig {
		t.Fatalf("the test needs %s and model.norm.weight in different shards", first)
	}
	write(with(first, other))
	if _, err := Load(backend, snap, dtypes.Float32); err == nil || !strings.Contains(err.Error(), first) {
		t.Errorf("index disagreeing with the shards: %v", err)
	}
	write(map[string]string{})
	if _, err := Load(backend, snap, dtypes.Float32); err == nil || !strings.Contains(err.Error(), "no weight_map") {
		t.Errorf("empty index: %v", err)
	}
	write(base)
	if _, err := Load(backend, snap, dtypes.Float32); err != nil {
		t.Fatalf("restored index: %v", err)
	}
}

// TestNewBackendUnknown: an unknown backend (issue 14 #3) is an error listing the valid choices,
// naming where the spec came from; it does not panic.
func TestNewBackendUnknown(t *testing.T) {
	_, err := NewBackend("bogus")
	if err == nil || !strings.Contains(err.Error(), `--backend "bogus"`) || !strings.Contains(err.Error(), "xla:cuda") ||
		!strings.Contains(err.Error(), "go:OPTIONS") {
		t.Fatalf("--backend bogus: %v", err)
	}
	t.Setenv("GOMLX_BACKEND", "nope:x")
	if _, err := NewBackend(""); err == nil || !strings.Contains(err.Error(), `$GOMLX_BACKEND "nope:x"`) {
		t.Fatalf("$GOMLX_BACKEND=nope:x: %v", err)
	}
	if _, err := NewBackend("go:bogus"); err == nil || !strings.Contains(err.Error(), "bogus") {
		t.Fatalf("go:bogus: %v", err)
	}
}
