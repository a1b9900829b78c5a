package nbclean

import (
	"strings"
	"testing"
)

const executed = `{
 "cells": [
  {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# <b>T</b> & ü"]},
  {"cell_type": "code", "execution_count": 1, "id": "a", "metadata": {"execution": {"iopub.status.idle": "x"}, "tags": ["keep"]},
   "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}], "source": ["%%\n", "fmt.Println(\"hi\")"]},
  {"cell_type": "code", "execution_count": 2, "id": "b", "metadata": {}, "outputs": [], "source": "x := 1"}
 ],
 "metadata": {"kernelspec": {"display_name": "Go (gonb)", "language": "go", "name": "gonb"}, "widgets": {}},
 "nbformat": 4, "nbformat_minor": 5
}`

func join(ps []string) string { return strings.Join(ps, "\n") }

func TestCleanAndProblems(t *testing.T) {
	probs, err := Problems([]byte(executed))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`notebook metadata has "widgets" (run metadata)`,
		"no source digest: the notebook was not executed and cleaned by the update command",
		`cell 2 (id "a") has run metadata "execution"`}
	if join(probs) != join(want) {
		t.Errorf("Problems:\n%s\nwant:\n%s", join(probs), join(want))
	}
	out, err := Clean([]byte(executed))
	if err != nil {
		t.Fatal(err)
	}
	if probs, _ := Problems(out); len(probs) != 0 {
		t.Errorf("cleaned notebook still has %v", probs)
	}
	for _, s := range []string{`"# <b>T</b> & ü"`, `"tags": [`, `"hi\n"`, `"execution_count": 2`, `"source_sha256": "`, "\n \"cells\": [\n"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("cleaned notebook lacks %q:\n%s", s, out)
		}
	}
	again, err := Clean(out)
	if err != nil || string(again) != string(out) {
		t.Errorf("Clean is not idempotent (err %v):\n%s\nthen\n%s", err, out, again)
	}

	// A cell edited after the run, cells run out of order, a failed cell, an unexecuted cell.
	for _, c := range []struct{ from, to, want string }{
		{`fmt.Println(\"hi\")`, `fmt.Println(\"ho\")`, "cells changed since the notebook was executed (source digest differs)"},
		{`"execution_count": 2`, `"execution_count": 5`, `cell 3 (id "b") has execution_count 5, want 2 (one clean run, top to bottom)`},
		{`"execution_count": 2`, `"execution_count": null`, `cell 3 (id "b") has execution_count <nil>, want 2 (one clean run, top to bottom)`},
		{`"outputs": []`, `"outputs": [{"output_type": "error", "ename": "panic", "evalue": "boom", "traceback": []}]`, `cell 3 (id "b") has an error output: panic: boom`},
	} {
		bad := strings.Replace(string(out), c.from, c.to, 1)
		if bad == string(out) {
			t.Fatalf("%q not in the cleaned notebook", c.from)
		}
		probs, err := Problems([]byte(bad))
		if err != nil || join(probs) != c.want {
			t.Errorf("after %s → %s: Problems = %q (err %v), want %q", c.from, c.to, probs, err, c.want)
		}
	}
}

func TestNotNotebook(t *testing.T) {
	for _, in := range []string{`[]`, `{"cells": 3}`, `not json`} {
		if _, err := Clean([]byte(in)); err == nil {
			t.Errorf("Clean(%s): no error", in)
		}
		if _, err := Problems([]byte(in)); err == nil {
			t.Errorf("Problems(%s): no error", in)
		}
	}
}
