package pikkuredis_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// --- JSON as JSON.stringify writes it ---

// maxJSONDepth is how deeply encoding/json nests when it reads JSON; the
// store refuses to write what it could not read back.
const maxJSONDepth = 10000

// jsStringify is what JSON.stringify writes for the JavaScript value that
// corresponds to v, with the differences the README documents for Go
// values: map keys sorted, -0 written as -0, invalid UTF-8 written as the
// escape \ufffd (JavaScript has no such strings); a json.RawMessage is
// written as given without insignificant whitespace (its numbers and
// escapes are kept, except \u2028 and \u2029, written as the characters),
// and integers are exact (JavaScript would round those beyond 2^53). It
// is written here from the ECMAScript rules, not from encoding/json, and
// covers the types the fuzz targets build. It fails where the store must
// refuse: NaN, infinities, channels, functions, complex numbers, a
// RawMessage or Number that is not JSON, nesting deeper than encoding/json
// reads.
func jsStringify(v any) ([]byte, error) {
	var b bytes.Buffer
	depth, err := jsWrite(&b, v)
	if err != nil {
		return nil, err
	}
	if depth > maxJSONDepth {
		return nil, fmt.Errorf("nested %d deep", depth)
	}
	return b.Bytes(), nil
}

// fuzzStruct has the struct tags the JSON fuzz target covers.
type fuzzStruct struct {
	S      string          `json:"s"`
	N      float64         `json:"n,omitempty"`
	Q      int64           `json:"q,string"`
	R      json.RawMessage `json:"r,omitempty"`
	Hidden string          `json:"-"`
	Plain  bool
}

// jsWrite writes v and returns how deeply it nests (a scalar is 0).
func jsWrite(b *bytes.Buffer, v any) (int, error) {
	switch x := v.(type) {
	case nil:
		b.WriteString("null")
	case bool:
		b.WriteString(strconv.FormatBool(x))
	case string:
		jsString(b, x)
	case float64:
		s, err := jsNumber(x)
		if err != nil {
			return 0, err
		}
		b.WriteString(s)
	case int:
		b.WriteString(strconv.Itoa(x))
	case int64:
		b.WriteString(strconv.FormatInt(x, 10))
	case uint64:
		b.WriteString(strconv.FormatUint(x, 10))
	case []byte:
		if x == nil {
			b.WriteString("null")
		} else {
			jsString(b, base64.StdEncoding.EncodeToString(x))
		}
	case json.Number:
		s := string(x)
		if s == "" {
			s = "0" // encoding/json writes the zero Number as 0
		}
		if !jsonNumberRE.MatchString(s) {
			return 0, fmt.Errorf("json.Number %q is not a number", s)
		}
		b.WriteString(s)
	case json.RawMessage:
		if x == nil {
			b.WriteString("null")
			return 0, nil
		}
		if !json.Valid(x) {
			return 0, errors.New("json.RawMessage is not JSON")
		}
		return writeRaw(b, x), nil
	case []any:
		b.WriteByte('[')
		deepest := 0
		for i, e := range x {
			if i > 0 {
				b.WriteByte(',')
			}
			d, err := jsWrite(b, e)
			if err != nil {
				return 0, err
			}
			deepest = max(deepest, d)
		}
		b.WriteByte(']')
		return deepest + 1, nil
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys) // encoding/json sorts; JavaScript keeps insertion order
		b.WriteByte('{')
		deepest := 0
		for i, k := range keys {
			if i > 0 {
				b.WriteByte(',')
			}
			jsString(b, k)
			b.WriteByte(':')
			d, err := jsWrite(b, x[k])
			if err != nil {
				return 0, err
			}
			deepest = max(deepest, d)
		}
		b.WriteByte('}')
		return deepest + 1, nil
	case fuzzStruct:
		b.WriteString(`{"s":`)
		jsString(b, x.S)
		if x.N != 0 {
			b.WriteString(`,"n":`)
			s, err := jsNumber(x.N)
			if err != nil {
				return 0, err
			}
			b.WriteString(s)
		}
		b.WriteString(`,"q":`)
		jsString(b, strconv.FormatInt(x.Q, 10))
		d := 0
		if len(x.R) > 0 {
			b.WriteString(`,"r":`)
			var err error
			if d, err = jsWrite(b, x.R); err != nil {
				return 0, err
			}
		}
		b.WriteString(`,"Plain":` + strconv.FormatBool(x.Plain) + `}`)
		return d + 1, nil
	default:
		return 0, fmt.Errorf("%T has no JSON form", v)
	}
	return 0, nil
}

var jsonNumberRE = regexp.MustCompile(`\A-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?\z`)

// jsString is JSON.stringify's QuoteJSONString, with invalid UTF-8 (which
// no JavaScript string holds) written as the escape \ufffd, as Go does.
func jsString(b *bytes.Buffer, s string) {
	b.WriteByte('"')
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b.WriteString(`\ufffd`)
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r < 0x20:
			fmt.Fprintf(b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	b.WriteByte('"')
}

// jsNumber is Number::toString (ECMAScript 6.1.6.1.20), except that -0
// stays -0 (a documented difference; JavaScript writes 0).
func jsNumber(f float64) (string, error) {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return "", fmt.Errorf("%v has no JSON form", f)
	case f == 0 && math.Signbit(f):
		return "-0", nil
	case f == 0:
		return "0", nil
	}
	sign := ""
	if f < 0 {
		sign, f = "-", -f
	}
	// The shortest digits that read back as f, and the exponent n such
	// that f = 0.digits × 10^n.
	e := strconv.FormatFloat(f, 'e', -1, 64) // d.ddde±xx
	mant, exp, _ := strings.Cut(e, "e")
	digits := strings.Replace(mant, ".", "", 1)
	x, _ := strconv.Atoi(exp)
	k, n := len(digits), x+1
	switch {
	case k <= n && n <= 21:
		return sign + digits + strings.Repeat("0", n-k), nil
	case 0 < n && n <= 21:
		return sign + digits[:n] + "." + digits[n:], nil
	case -6 < n && n <= 0:
		return sign + "0." + strings.Repeat("0", -n) + digits, nil
	}
	es := "+"
	if n-1 < 0 {
		es = "-"
	}
	ex := strconv.Itoa(abs(n - 1))
	if k == 1 {
		return sign + digits + "e" + es + ex, nil
	}
	return sign + digits[:1] + "." + digits[1:] + "e" + es + ex, nil
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// writeRaw writes valid JSON text without the whitespace between tokens,
// and with the escapes \u2028 and \u2029 as the characters (the README:
// U+2028 and U+2029 as themselves). It returns the nesting depth.
func writeRaw(b *bytes.Buffer, raw []byte) int {
	depth, deepest := 0, 0
	in := false
	for i := 0; i < len(raw); i++ {
		c := raw[i]
		if in {
			switch {
			case c == '"':
				in = false
			case c == '\\' && raw[i+1] == 'u' && (string(raw[i+2:i+6]) == "2028" || string(raw[i+2:i+6]) == "2029"):
				r, _ := strconv.ParseUint(string(raw[i+2:i+6]), 16, 32)
				b.WriteRune(rune(r))
				i += 5
				continue
			case c == '\\':
				b.WriteByte(c)
				i++
				c = raw[i]
			}
			b.WriteByte(c)
			continue
		}
		switch c {
		case ' ', '\t', '\n', '\r':
			continue
		case '"':
			in = true
		case '[', '{':
			depth++
			deepest = max(deepest, depth)
		case ']', '}':
			depth--
		}
		b.WriteByte(c)
	}
	return deepest
}

// jsFalsy says whether JavaScript reads the JSON text b (as jsStringify
// writes it) as false: null, false, "" or a number that is zero as a
// double.
func jsFalsy(b []byte) bool {
	switch s := string(b); {
	case s == "null" || s == "false" || s == `""`:
		return true
	case jsonNumberRE.MatchString(s):
		f, _ := strconv.ParseFloat(s, 64) // 1e-400 is 0, as in JavaScript; 1e400 is Inf
		return f == 0
	}
	return false
}

func TestJSStringifyReference(t *testing.T) {
	// The reference itself, on what JSON.stringify writes (checked with
	// Node.js 20) and the documented Go differences.
	cases := []struct {
		v    any
		want string
	}{
		{[]any{0.1, 1e21, 1e20, 1e-7, 1e-6, -1.5, 5e-324, 1.7976931348623157e308, 100.0, 123456789012345680000.0, 1.5e-6},
			`[0.1,1e+21,100000000000000000000,1e-7,0.000001,-1.5,5e-324,1.7976931348623157e+308,100,123456789012345680000,0.0000015]`},
		{"\x7f\x00\b\f\x1f\u2028<>&\"\\", "\"\x7f\\u0000\\b\\f\\u001f\u2028<>&\\\"\\\\\""},
		{"a\xffb", `"a\ufffdb"`},
		{math.Copysign(0, -1), `-0`},
		{json.RawMessage(" { \"a\" : [ 1.0 , \"\\u2028 \\\\u2028\" ] } "), "{\"a\":[1.0,\"\u2028 \\\\u2028\"]}"},
		{map[string]any{"b": []any{}, "a": map[string]any{}}, `{"a":{},"b":[]}`},
		{fuzzStruct{S: "s", Q: 3, Hidden: "h"}, `{"s":"s","q":"3","Plain":false}`},
	}
	for _, c := range cases {
		got, err := jsStringify(c.v)
		require.NoError(t, err)
		assert.Equal(t, c.want, string(got), "%#v", c.v)
	}
	for _, falsy := range []string{"null", "false", `""`, "0", "-0", "0.0e5", "1e-400"} {
		assert.True(t, jsFalsy([]byte(falsy)), falsy)
	}
	for _, truthy := range []string{"true", `"0"`, "[]", "{}", "1e400", "0.1"} {
		assert.False(t, jsFalsy([]byte(truthy)), truthy)
	}
}

// mustJS is jsStringify of a value that has a JSON form.
func mustJS(t testing.TB, v any) string {
	t.Helper()
	b, err := jsStringify(v)
	require.NoError(t, err, "%#v", v)
	return string(b)
}
