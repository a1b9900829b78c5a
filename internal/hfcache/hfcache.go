// Package hfcache resolves a Hugging Face model name to a checkpoint directory already in the
// local Hub cache, without any download.
//
// huggingface_hub stores a repository Org/Name under <cache>/models--Org--Name/ with
//
//	refs/main            the commit hash the branch main points to
//	snapshots/<hash>/    the files of that revision (config.json, model.safetensors, …)
//
// and the cache is $HF_HUB_CACHE, else $HF_HOME/hub, else $XDG_CACHE_HOME/huggingface/hub, else
// ~/.cache/huggingface/hub (huggingface_hub's constants).
package hfcache

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/pkg/errors"
)

// CacheDirs returns the Hub cache directories to search, in huggingface_hub's order of precedence
// (only the first one set applies there; the others are searched too, for a cache filled before a
// variable changed).
func CacheDirs() []string {
	var dirs []string
	add := func(d string) {
		for _, e := range dirs {
			if e == d {
				return
			}
		}
		dirs = append(dirs, d)
	}
	if d := os.Getenv("HF_HUB_CACHE"); d != "" {
		add(d)
	}
	if d := os.Getenv("HF_HOME"); d != "" {
		add(filepath.Join(d, "hub"))
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		add(filepath.Join(d, "huggingface", "hub"))
	}
	if home, err := os.UserHomeDir(); err == nil {
		add(filepath.Join(home, ".cache", "huggingface", "hub"))
	}
	return dirs
}

// repoName is a Hub model id, Org/Name, with an optional @revision (a branch, tag or commit hash).
var repoName = regexp.MustCompile(`^([A-Za-z0-9][A-Za-z0-9._-]*)/([A-Za-z0-9][A-Za-z0-9._-]*)(?:@([A-Za-z0-9._/-]+))?$`)

// IsRepoName reports whether s has the form of a Hub model id (Org/Name[@revision]).
func IsRepoName(s string) bool { return repoName.MatchString(s) && !strings.Contains(s, "..") }

// Resolve returns the checkpoint directory for spec: spec itself when it is an existing directory
// or not of the form Org/Name (the loader then reports what is missing there); else, for
// Org/Name[@revision], the cached snapshot of that revision (default main). The error for a name
// not in the cache lists every path looked at.
func Resolve(spec string) (string, error) {
	if st, err := os.Stat(spec); (err == nil && st.IsDir()) || !IsRepoName(spec) {
		return spec, nil
	}
	m := repoName.FindStringSubmatch(spec)
	org, name, rev := m[1], m[2], m[3]
	if rev == "" {
		rev = "main"
	}
	folder := "models--" + org + "--" + name
	var looked []string
	for _, cache := range CacheDirs() {
		repo := filepath.Join(cache, folder)
		looked = append(looked, repo)
		if _, err := os.Stat(repo); err != nil {
			continue
		}
		hash := rev
		refPath := filepath.Join(repo, "refs", filepath.FromSlash(rev))
		if data, err := os.ReadFile(refPath); err == nil {
			hash = strings.TrimSpace(string(data))
		} else if !regexp.MustCompile(`^[0-9a-f]{40}$`).MatchString(rev) {
			looked[len(looked)-1] = refPath
			continue
		}
		snap := filepath.Join(repo, "snapshots", hash)
		if st, err := os.Stat(snap); err == nil && st.IsDir() {
			return snap, nil
		}
		looked[len(looked)-1] = snap
	}
	return "", errors.Errorf("hfcache: %s is not a directory, and model %s/%s (revision %s) is not in the local Hugging Face cache; "+
		"looked at %s. Nothing is downloaded: fetch it first (e.g. huggingface-cli download %s/%s) or give a directory",
		spec, org, name, rev, strings.Join(looked, ", "), org, name)
}
