package awsdouble

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"strconv"
)

// Embedding derives a unit-length vector of dim values from a hash of salt
// and text: the same text always gets the same vector, different texts (or
// doubles, by their salt) different ones. Values have six decimals so they
// survive a JSON round trip exactly.
func Embedding(salt, text string, dim int) []float64 {
	v := make([]float64, dim)
	var norm float64
	for i := range v {
		sum := sha256.Sum256([]byte(salt + "\x00" + text + "\x00" + strconv.Itoa(i)))
		v[i] = float64(binary.BigEndian.Uint32(sum[:4]))/(1<<31) - 1
		norm += v[i] * v[i]
	}
	norm = math.Sqrt(norm)
	for i := range v {
		if norm > 0 {
			v[i] /= norm
		}
		v[i] = math.Round(v[i]*1e6) / 1e6
	}
	return v
}
