package data

import "github.com/pkg/errors"

// errFirst stops eachRecord after the first record.
var errFirst = errors.New("data: first record read")

// IsPreferenceFile reports whether a data file (JSONL or Parquet) holds preference pairs: its
// first record has a "chosen" or "chosen_ids" column (the formats ReadPairs reads).
func IsPreferenceFile(path string) (bool, error) {
	pairs, seen := false, false
	err := eachRecord(path, func(r *record) error {
		pairs, seen = r.has("chosen") || r.has("chosen_ids"), true
		return errFirst
	})
	if err != nil && !errors.Is(err, errFirst) {
		return false, err
	}
	if !seen {
		return false, errors.Errorf("data: %s holds no records", path)
	}
	return pairs, nil
}
