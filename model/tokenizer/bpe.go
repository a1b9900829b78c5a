package tokenizer

import (
	"container/heap"
	"fmt"
)

// bpeModel is the "BPE" model of a tokenizer.json: a vocabulary, ranked merges, and the options
// Hugging Face tokenizers implements in models/bpe (ignore_merges, byte_fallback, fuse_unk).
type bpeModel struct {
	vocab        map[string]int
	merges       map[[2]int]merge // (left id, right id) → rank and merged id
	unk          int              // unk_token id, -1 if none
	ignoreMerges bool             // a word found whole in the vocabulary is one token (Llama 3)
	byteFallback bool             // a character outside the vocabulary becomes its <0xXX> byte tokens (Gemma)
	fuseUnk      bool             // consecutive unknown characters give one unk
	byteTokens   [256]int         // ids of <0x00>…<0xFF> when byteFallback (-1 where absent)
}

type merge struct{ rank, id int }

// encodeWord returns the ids of one pre-tokenized word, as tokenizers' BPE::merge_word does: one
// symbol per character (byte fallback or unk for characters outside the vocabulary), then the
// lowest-ranked adjacent pair merged first (leftmost on ties) until no pair has a merge.
func (m *bpeModel) encodeWord(word string, out []int) []int {
	if word == "" {
		return out
	}
	if m.ignoreMerges {
		if id, ok := m.vocab[word]; ok {
			return append(out, id)
		}
	}
	syms := make([]int, 0, len(word))
	prevUnk := false
	for _, r := range word {
		s := string(r)
		if id, ok := m.vocab[s]; ok {
			syms, prevUnk = append(syms, id), false
			continue
		}
		if m.byteFallback {
			all := true
			for i := range len(s) {
				if m.byteTokens[s[i]] < 0 {
					all = false
				}
			}
			if all {
				for i := range len(s) {
					syms = append(syms, m.byteTokens[s[i]])
				}
				prevUnk = false
				continue
			}
		}
		if m.unk >= 0 {
			if !(m.fuseUnk && prevUnk) {
				syms = append(syms, m.unk)
			}
			prevUnk = true
		}
		// Without an unk token the character is dropped, as in tokenizers (only possible for a
		// vocabulary that is neither byte-level nor byte-fallback).
	}
	return append(out, m.mergeSymbols(syms)...)
}

// mergeSymbols applies the merges to a symbol sequence with a heap of candidate pairs ordered
// by (rank, position); entries made stale by an earlier merge are skipped when popped.
func (m *bpeModel) mergeSymbols(syms []int) []int {
	n := len(syms)
	if n < 2 || len(m.merges) == 0 {
		return syms
	}
	prev, next := make([]int, n), make([]int, n)
	alive := make([]bool, n)
	for i := range n {
		prev[i], next[i], alive[i] = i-1, i+1, true
	}
	next[n-1] = -1
	h := &pairHeap{}
	push := func(i int) {
		j := next[i]
		if j < 0 {
			return
		}
		if mg, ok := m.merges[[2]int{syms[i], syms[j]}]; ok {
			heap.Push(h, pair{rank: mg.rank, pos: i, left: syms[i], right: syms[j], id: mg.id})
		}
	}
	for i := range n - 1 {
		push(i)
	}
	for h.Len() > 0 {
		p := heap.Pop(h).(pair)
		i := p.pos
		j := next[i]
		if !alive[i] || j < 0 || syms[i] != p.left || syms[j] != p.right {
			continue // stale
		}
		syms[i] = p.id
		alive[j] = false
		next[i] = next[j]
		if next[j] >= 0 {
			prev[next[j]] = i
		}
		if prev[i] >= 0 {
			push(prev[i])
		}
		push(i)
	}
	out := syms[:0:0]
	for i := 0; i >= 0 && i < n; i = next[i] {
		out = append(out, syms[i])
	}
	return out
}

type pair struct{ rank, pos, left, right, id int }

type pairHeap []pair

func (h pairHeap) Len() int { return len(h) }
func (h pairHeap) Less(a, b int) bool {
	if h[a].rank != h[b].rank {
		return h[a].rank < h[b].rank
	}
	return h[a].pos < h[b].pos
}
func (h pairHeap) Swap(a, b int) { h[a], h[b] = h[b], h[a] }
func (h *pairHeap) Push(x any)   { *h = append(*h, x.(pair)) }
func (h *pairHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// byteTokenName is the vocabulary entry of a fallback byte, e.g. "<0x0A>".
func byteTokenName(b byte) string { return fmt.Sprintf("<0x%02X>", b) }
