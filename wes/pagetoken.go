package wes

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
)

// pageTokens makes and checks opaque, tamper-evident page tokens. A token
// carries the position after which the next page starts and a fingerprint of
// the query it belongs to (owner, filters), sealed with an HMAC, so a forged
// token or one reused for another query is refused.
type pageTokens struct {
	key []byte
}

const tokenVersion = 1

var errBadToken = errors.New("page_token is not valid for this request")

func fingerprint(parts ...string) [8]byte {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(p))
		h.Write([]byte{0})
	}
	return [8]byte(h.Sum(nil))
}

func (t pageTokens) make(pos int64, fp [8]byte) string {
	b := make([]byte, 0, 1+8+8+16)
	b = append(b, tokenVersion)
	b = binary.BigEndian.AppendUint64(b, uint64(pos))
	b = append(b, fp[:]...)
	b = append(b, t.mac(b)...)
	return base64.RawURLEncoding.EncodeToString(b)
}

func (t pageTokens) parse(s string, fp [8]byte) (int64, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil || len(b) != 1+8+8+16 || b[0] != tokenVersion {
		return 0, errBadToken
	}
	body, sum := b[:17], b[17:]
	if !hmac.Equal(sum, t.mac(body)) || [8]byte(body[9:17]) != fp {
		return 0, errBadToken
	}
	pos := int64(binary.BigEndian.Uint64(body[1:9]))
	if pos <= 0 {
		return 0, errBadToken
	}
	return pos, nil
}

func (t pageTokens) mac(b []byte) []byte {
	m := hmac.New(sha256.New, t.key)
	m.Write(b)
	return m.Sum(nil)[:16]
}
