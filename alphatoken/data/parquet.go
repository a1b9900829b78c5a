package data

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"unicode/utf8"

	"github.com/parquet-go/parquet-go"
	"github.com/pkg/errors"
)

// eachParquetRow reads a Parquet file (as Hugging Face datasets and pyarrow write them: strings,
// lists of int64 and lists of {role, content} structs) row by row into records, so Parquet and
// JSONL share every format and check. Rows are named "file row N" (N from 0, as datasets index them).
// go-huggingface v0.4.8 reads Parquet only into a fixed Go struct per file; the formats here put
// different types in one column name ("prompt": text or messages), so rows are read generically
// with parquet-go.
func eachParquetRow(path string, fn func(r *record) error) error {
	f, err := os.Open(path)
	if err != nil {
		return errors.Wrapf(err, "data: opening %s", path)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return errors.Wrapf(err, "data: %s", path)
	}
	cols, reader, err := openParquet(f, st.Size())
	if err != nil {
		return errors.Errorf("data: %s is not a readable Parquet file: %v", path, err)
	}
	known := false
	for _, c := range cols {
		for _, k := range knownColumns {
			known = known || c == k
		}
	}
	if !known {
		reader.Close()
		return errors.Errorf("data: %s has none of the dataset columns %v (its columns: %v)", path, knownColumns, cols)
	}
	defer reader.Close()
	for row := 0; ; row++ {
		values := map[string]any{}
		err := readRow(reader, &values)
		if err == io.EOF {
			return nil
		}
		src := fmt.Sprintf("%s row %d", path, row)
		if err != nil {
			return errors.Errorf("%s: %v", src, err)
		}
		fields := make(map[string]json.RawMessage, len(values))
		for _, k := range sortedKeys(values) {
			if err := checkUTF8(values[k]); err != nil {
				return errors.Errorf("%s: column %q: %v", src, k, err)
			}
			b, err := json.Marshal(values[k])
			if err != nil {
				return errors.Errorf("%s: column %q: %v", src, k, err)
			}
			fields[k] = b
		}
		if err := fn(&record{src: src, fields: fields}); err != nil {
			return err
		}
	}
}

// openParquet reads the file's footer and returns its top-level column names and a row reader.
// The page index (column statistics for filtered reads) is skipped: rows are read in full, and
// parquet-go v0.32.0 panics on some malformed page indexes (found by FuzzReadParquet); any other
// panic of the library on a malformed footer or schema becomes an error.
func openParquet(r io.ReaderAt, size int64) (cols []string, reader *parquet.Reader, err error) {
	defer func() {
		if p := recover(); p != nil {
			cols, reader, err = nil, nil, errors.Errorf("malformed Parquet footer: %v", p)
		}
	}()
	pf, err := parquet.OpenFile(r, size, parquet.SkipPageIndex(true))
	if err != nil {
		return nil, nil, err
	}
	for _, field := range pf.Schema().Fields() {
		cols = append(cols, field.Name())
	}
	return cols, parquet.NewReader(pf), nil
}

// readRow reads one row, turning a panic of the reader on a malformed file into an error.
func readRow(r *parquet.Reader, dst *map[string]any) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = errors.Errorf("malformed Parquet data: %v", p)
		}
	}()
	return r.Read(dst)
}

// checkUTF8 refuses invalid UTF-8 in any string of a value (json.Marshal would replace it).
func checkUTF8(v any) error {
	switch x := v.(type) {
	case string:
		if !utf8.ValidString(x) {
			return errors.New("invalid UTF-8 in a string")
		}
	case []any:
		for _, e := range x {
			if err := checkUTF8(e); err != nil {
				return err
			}
		}
	case map[string]any:
		for _, e := range x {
			if err := checkUTF8(e); err != nil {
				return err
			}
		}
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
