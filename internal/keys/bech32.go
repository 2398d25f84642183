package keys

import (
	"errors"
	"strings"
)

// A minimal Bech32 (BIP 173) codec, enough to build and read age's
// "AGE-SECRET-KEY-1..." strings, for which age has no raw-bytes constructor.
// Unlike BIP 173 there is no 90-character length limit, as in age.

const bech32Charset = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"

func bech32Polymod(values []byte) uint32 {
	gen := [5]uint32{0x3b6a57b2, 0x26508e6d, 0x1ea119fa, 0x3d4233dd, 0x2a1462b3}
	chk := uint32(1)
	for _, v := range values {
		top := chk >> 25
		chk = (chk&0x1ffffff)<<5 ^ uint32(v)
		for i := range 5 {
			if top>>i&1 == 1 {
				chk ^= gen[i]
			}
		}
	}
	return chk
}

// bech32Values returns the expanded lowercase hrp followed by data.
func bech32Values(hrp string, data []byte) []byte {
	v := make([]byte, 0, 2*len(hrp)+1+len(data)+6)
	for i := range len(hrp) {
		v = append(v, hrp[i]>>5)
	}
	v = append(v, 0)
	for i := range len(hrp) {
		v = append(v, hrp[i]&31)
	}
	return append(v, data...)
}

// bech32Encode encodes data under hrp. An uppercase hrp gives an uppercase
// result.
func bech32Encode(hrp string, data []byte) (string, error) {
	if hrp == "" {
		return "", errors.New("bech32: empty hrp")
	}
	for i := range len(hrp) {
		if hrp[i] < 33 || hrp[i] > 126 {
			return "", errors.New("bech32: invalid hrp character")
		}
	}
	upper := strings.ToUpper(hrp) == hrp && strings.ToLower(hrp) != hrp
	if !upper && strings.ToLower(hrp) != hrp {
		return "", errors.New("bech32: mixed-case hrp")
	}
	hrp = strings.ToLower(hrp)

	// Regroup 8-bit bytes into 5-bit values, padding the last one.
	var values []byte
	var acc uint32
	var bits uint
	for _, b := range data {
		acc = acc<<8 | uint32(b)
		bits += 8
		for bits >= 5 {
			bits -= 5
			values = append(values, byte(acc>>bits)&31)
		}
	}
	if bits > 0 {
		values = append(values, byte(acc<<(5-bits))&31)
	}

	mod := bech32Polymod(append(bech32Values(hrp, values), 0, 0, 0, 0, 0, 0)) ^ 1
	var sb strings.Builder
	sb.WriteString(hrp)
	sb.WriteByte('1')
	for _, v := range values {
		sb.WriteByte(bech32Charset[v])
	}
	for i := range 6 {
		sb.WriteByte(bech32Charset[mod>>(5*(5-i))&31])
	}
	if upper {
		return strings.ToUpper(sb.String()), nil
	}
	return sb.String(), nil
}

// bech32Decode decodes s, returning the hrp in the case of s. Errors never
// include s.
func bech32Decode(s string) (hrp string, data []byte, err error) {
	lower := strings.ToLower(s)
	if lower != s && strings.ToUpper(s) != s {
		return "", nil, errors.New("bech32: mixed case")
	}
	pos := strings.LastIndexByte(lower, '1')
	if pos < 1 || pos+7 > len(lower) {
		return "", nil, errors.New("bech32: separator at invalid position")
	}
	for i := range pos {
		if lower[i] < 33 || lower[i] > 126 {
			return "", nil, errors.New("bech32: invalid hrp character")
		}
	}
	values := make([]byte, 0, len(lower)-pos-1)
	for i := pos + 1; i < len(lower); i++ {
		v := strings.IndexByte(bech32Charset, lower[i])
		if v < 0 {
			return "", nil, errors.New("bech32: invalid character")
		}
		values = append(values, byte(v))
	}
	if bech32Polymod(bech32Values(lower[:pos], values)) != 1 {
		return "", nil, errors.New("bech32: invalid checksum")
	}
	values = values[:len(values)-6]

	var acc uint32
	var bits uint
	for _, v := range values {
		acc = acc<<5 | uint32(v)
		bits += 5
		if bits >= 8 {
			bits -= 8
			data = append(data, byte(acc>>bits))
		}
	}
	if bits >= 5 {
		return "", nil, errors.New("bech32: illegal zero padding")
	}
	if acc&(1<<bits-1) != 0 {
		return "", nil, errors.New("bech32: non-zero padding")
	}
	return s[:pos], data, nil
}
