package pikkuredis

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"sync"
)

// marshalJSON encodes v as JavaScript's JSON.stringify does for the same
// value, so that Go and TypeScript services store the same bytes:
// no HTML escaping of <, > and &, no trailing newline, and U+2028/U+2029
// written as themselves (encoding/json always escapes them; JSON.stringify
// never does). Map keys come out sorted, as encoding/json sorts them; a
// JavaScript object keeps its insertion order instead.
//
// A value nested more than maxJSONDepth deep is an error: encoding/json
// writes it but will not read it back, so every later read of the channel
// would fail.
func marshalJSON(v any) ([]byte, error) {
	e := encoders.Get().(*jsonEncoder)
	defer e.release()
	if err := e.enc.Encode(v); err != nil {
		return nil, err
	}
	out := bytes.TrimSuffix(e.buf.Bytes(), []byte{'\n'})
	if len(out) > 2*maxJSONDepth && tooDeep(out) {
		return nil, fmt.Errorf("nested more than %d levels deep, more than encoding/json reads back", maxJSONDepth)
	}
	if bytes.Contains(out, []byte(`\u202`)) {
		return unescapeLineSeparators(out), nil
	}
	return bytes.Clone(out), nil
}

// maxJSONDepth is the deepest nesting of arrays and objects that
// encoding/json reads (json.Valid, json.Unmarshal); it writes deeper.
const maxJSONDepth = 10000

// tooDeep says whether the JSON text b nests arrays and objects more than
// maxJSONDepth deep. Strings are skipped a quote at a time.
func tooDeep(b []byte) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			for { // to the closing quote: one not escaped by an odd run of backslashes
				j := bytes.IndexByte(b[i+1:], '"')
				if j < 0 {
					return false
				}
				i += 1 + j
				k := i - 1
				for b[k] == '\\' {
					k--
				}
				if (i-1-k)%2 == 0 {
					break
				}
			}
		case '[', '{':
			if depth++; depth > maxJSONDepth {
				return true
			}
		case ']', '}':
			depth--
		}
	}
	return false
}

// jsonEncoder is an encoder configured as marshalJSON needs it, with its
// buffer; they are reused, since every write of a channel encodes JSON.
type jsonEncoder struct {
	buf bytes.Buffer
	enc *json.Encoder
}

var encoders = sync.Pool{New: func() any {
	e := &jsonEncoder{}
	e.enc = json.NewEncoder(&e.buf)
	e.enc.SetEscapeHTML(false)
	return e
}}

func (e *jsonEncoder) release() {
	if e.buf.Cap() > 64<<10 { // let a rare huge value's buffer go
		return
	}
	e.buf.Reset()
	encoders.Put(e)
}

// unescapeLineSeparators turns the escapes \u2028 and \u2029 back into the
// raw characters. It walks escape pairs so that an escaped backslash
// followed by the text "u2028" is left alone.
func unescapeLineSeparators(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for i := 0; i < len(in); i++ {
		if in[i] != '\\' || i+1 >= len(in) {
			out = append(out, in[i])
			continue
		}
		if in[i+1] == 'u' && i+5 < len(in) && string(in[i+2:i+5]) == "202" && (in[i+5] == '8' || in[i+5] == '9') {
			if in[i+5] == '8' {
				out = append(out, "\u2028"...)
			} else {
				out = append(out, "\u2029"...)
			}
			i += 5
			continue
		}
		out = append(out, in[i], in[i+1])
		i++
	}
	return out
}

// isFalsyJSON reports whether b, the JSON text of one value, is a value
// JavaScript treats as false: null, false, 0 (however written) or "".
func isFalsyJSON(b []byte) bool {
	switch string(b) {
	case "null", "false", `""`:
		return true
	}
	if len(b) == 0 || !(b[0] == '-' || (b[0] >= '0' && b[0] <= '9')) {
		return false
	}
	f, err := strconv.ParseFloat(string(b), 64)
	return err == nil && f == 0
}
