package wes

import (
	"encoding/base64"
	"testing"
)

func TestPageTokens(t *testing.T) {
	tokens := pageTokens{key: []byte("0123456789abcdef0123456789abcdef")}
	fp := fingerprint("runs", "owner-a", "", "", "")

	for _, pos := range []int64{1, 42, 1 << 40} {
		tok := tokens.make(pos, fp)
		got, err := tokens.parse(tok, fp)
		if err != nil || got != pos {
			t.Errorf("round trip of %d: %d, %v", pos, got, err)
		}
	}

	tok := tokens.make(42, fp)
	raw, err := base64.RawURLEncoding.DecodeString(tok)
	if err != nil {
		t.Fatal(err)
	}
	for i := range raw {
		for _, bit := range []byte{0x01, 0x80} {
			bad := append([]byte(nil), raw...)
			bad[i] ^= bit
			if pos, err := tokens.parse(base64.RawURLEncoding.EncodeToString(bad), fp); err == nil {
				t.Errorf("byte %d flipped (%#x): accepted as position %d", i, bit, pos)
			}
		}
	}

	refused := map[string]string{
		"empty":           "",
		"garbage":         "not a token!",
		"truncated":       tok[:len(tok)-4],
		"extended":        tok + "AAAA",
		"padded":          tok + "==",
		"standard base64": base64.StdEncoding.EncodeToString(raw),
		"zero position":   tokens.make(0, fp),
		"negative":        tokens.make(-5, fp),
	}
	for name, s := range refused {
		if name == "standard base64" && s == tok {
			continue // same text in both alphabets
		}
		if pos, err := tokens.parse(s, fp); err == nil {
			t.Errorf("%s token %q accepted as position %d", name, s, pos)
		}
	}

	// A token belongs to one query: other filters, another owner, tasks.
	for _, other := range [][8]byte{
		fingerprint("runs", "owner-a", "COMPLETE", "", ""),
		fingerprint("runs", "owner-b", "", "", ""),
		fingerprint("runs", "owner-a", "", "name", "x"),
		fingerprint("tasks", "owner-a"),
	} {
		if _, err := tokens.parse(tok, other); err == nil {
			t.Errorf("token accepted for fingerprint %x", other)
		}
	}
	// Another server's key.
	if _, err := (pageTokens{key: []byte("another key")}).parse(tok, fp); err == nil {
		t.Error("token accepted under another key")
	}
}

func TestFingerprintSeparatesParts(t *testing.T) {
	// "ab"+"c" and "a"+"bc" are different queries.
	if fingerprint("ab", "c") == fingerprint("a", "bc") {
		t.Error("fingerprint does not separate its parts")
	}
	if fingerprint("runs", "o", "", "k", "v") != fingerprint("runs", "o", "", "k", "v") {
		t.Error("fingerprint is not deterministic")
	}
}
