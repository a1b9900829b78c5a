package nbstrip

import (
	"strings"
	"testing"
)

const executed = `{
 "cells": [
  {"cell_type": "markdown", "id": "m", "metadata": {}, "source": ["# <b>T</b> & ü"]},
  {"cell_type": "code", "execution_count": 3, "id": "c", "metadata": {"execution": {"iopub.status.idle": "x"}, "tags": ["keep"]},
   "outputs": [{"name": "stdout", "output_type": "stream", "text": ["hi\n"]}], "source": ["%%\n", "fmt.Println(\"hi\")"]}
 ],
 "metadata": {"kernelspec": {"display_name": "Go (gonb)", "language": "go", "name": "gonb"}, "widgets": {}},
 "nbformat": 4, "nbformat_minor": 5
}`

func TestStrip(t *testing.T) {
	probs, err := Problems([]byte(executed))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`notebook metadata has "widgets"`, `cell 2 (id "c") has 1 outputs`,
		`cell 2 (id "c") has execution_count 3`, `cell 2 (id "c") has metadata "execution"`}
	if strings.Join(probs, "\n") != strings.Join(want, "\n") {
		t.Errorf("Problems:\n%s\nwant:\n%s", strings.Join(probs, "\n"), strings.Join(want, "\n"))
	}
	out, err := Strip([]byte(executed))
	if err != nil {
		t.Fatal(err)
	}
	if probs, _ := Problems(out); len(probs) != 0 {
		t.Errorf("stripped notebook still has %v", probs)
	}
	for _, s := range []string{`"# <b>T</b> & ü"`, `"tags": [`, `"execution_count": null`, `"outputs": []`, "\n \"cells\": [\n"} {
		if !strings.Contains(string(out), s) {
			t.Errorf("stripped notebook lacks %q:\n%s", s, out)
		}
	}
	again, err := Strip(out)
	if err != nil || string(again) != string(out) {
		t.Errorf("Strip is not idempotent (err %v):\n%s\nthen\n%s", err, out, again)
	}
}

func TestNotNotebook(t *testing.T) {
	for _, in := range []string{`[]`, `{"cells": 3}`, `not json`} {
		if _, err := Strip([]byte(in)); err == nil {
			t.Errorf("Strip(%s): no error", in)
		}
		if _, err := Problems([]byte(in)); err == nil {
			t.Errorf("Problems(%s): no error", in)
		}
	}
}
