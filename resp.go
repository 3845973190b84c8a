package pikkuredis

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/gomodule/redigo/redis"
)

// The auto-pipelined connections read their replies with a RESP reader of
// their own rather than redigo's (which still dials them: TLS detection,
// AUTH, SELECT, the caller's dial options), for two reasons:
//
//   - A lane has one reader goroutine, and every reply on the connection
//     passes through it. redigo parses an array into a []any of boxed
//     []byte, three allocations per element; on a 400-id topic that is
//     most of the reader's time, and the small calls queued behind a
//     large reply wait for it. respReader only frames an array reply (it
//     finds where it ends and checks it is well formed) and hands its
//     bytes on; the caller decodes them on its own goroutine
//     (rawArray.values, rawArray.strings).
//   - A topic's ids can then be decoded straight into a []string, with
//     no []any in between, the ids sharing 4 KiB blocks: a few
//     allocations per call and one per 4 KiB of ids.
//
// It reads only plaintext RESP2 straight off the socket the store dialled;
// a connection under TLS, or from the caller's own dial function, keeps
// redigo's reader (see newLaneConn). Replies decode to exactly what
// redigo's Receive returns (FuzzRESPReader checks that on the same bytes).

// respBufSize is the reader's buffer: it grows for a reply that does not
// fit, and goes back to this size once that reply is handed on.
const respBufSize = 32 << 10

// maxRESPLen is the longest length a reply may give a bulk string or an
// array; a longer one is taken for a corrupt stream rather than allocated.
// Redis's strings are at most 512 MB (proto-max-bulk-len can raise that
// for requests, never past what memory holds).
const maxRESPLen = 1 << 32

// errRESP marks a reply stream that is not well-formed RESP: the
// connection is out of step and is dropped.
var errRESP = errors.New("redis protocol error")

func respError(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{errRESP}, args...)...)
}

// rawArray is an array reply as Redis sent it (a whole, framed RESP
// array, nested arrays included), decoded by its caller.
type rawArray []byte

// respReader reads one reply at a time off a connection's socket.
type respReader struct {
	rd      io.Reader
	conn    interface{ SetReadDeadline(time.Time) error }
	timeout time.Duration // a reply must arrive within this; 0: no limit
	armed   bool          // the deadline of the reply being read is set

	size  int // the buffer's usual size
	buf   []byte
	r, w  int   // buf[r:w] is read but not yet taken
	stack []int // frame's nesting: the elements still owed by each outer array
	// hint is how long the reply being framed will likely be, from its
	// elements so far (0: unknown), so that the buffer grows for a large
	// reply once or twice rather than doubling a dozen times.
	hint int
}

func newRESPReader(s *sock, timeout time.Duration) *respReader {
	return newRESPReaderSize(s, s, timeout, respBufSize)
}

func newRESPReaderSize(rd io.Reader, conn interface{ SetReadDeadline(time.Time) error }, timeout time.Duration, size int) *respReader {
	return &respReader{rd: rd, conn: conn, timeout: timeout, size: size, buf: make([]byte, size)}
}

// next reads one reply, in the shapes redigo's Receive gives: an error
// reply as (nil, redis.Error); a simple string as string; an integer as
// int64; a bulk string as []byte; a null as nil; an array of at least one
// element as rawArray, for the caller to decode. Any other error means
// the connection is unusable.
func (rr *respReader) next() (any, error) {
	rr.armed, rr.hint = false, 0
	end, err := rr.frame()
	if err != nil {
		return nil, err
	}
	b := rr.buf[rr.r : rr.r+end]
	if b[0] == '*' {
		if n, _ := parseRESPLen(b[1:bytes.IndexByte(b, '\r')]); n > 0 {
			return rr.take(end), nil
		}
	}
	v, _, err := decodeRESP(b, 0)
	rr.advance(end)
	if e, ok := v.(redis.Error); ok {
		return nil, e
	}
	return v, err
}

// take hands on the first n unread bytes (a framed array) as a rawArray.
// A reply that made the buffer grow is handed on in that buffer, and the
// reader starts a new one at the usual size, so that a large reply is
// never copied; a small one is copied out.
func (rr *respReader) take(n int) rawArray {
	if len(rr.buf) > rr.size && 2*n >= len(rr.buf) {
		out := rr.buf[rr.r : rr.r+n : rr.r+n]
		rest := rr.buf[rr.r+n : rr.w]
		rr.buf = make([]byte, max(rr.size, 2*len(rest)))
		rr.r, rr.w = 0, copy(rr.buf, rest)
		return out
	}
	out := rawArray(bytes.Clone(rr.buf[rr.r : rr.r+n]))
	rr.advance(n)
	return out
}

// advance drops the first n unread bytes. An empty buffer that a large
// reply made grow goes back to the usual size.
func (rr *respReader) advance(n int) {
	rr.r += n
	if rr.r == rr.w {
		rr.r, rr.w = 0, 0
		if len(rr.buf) > rr.size {
			rr.buf = make([]byte, rr.size)
		}
	}
}

// frame makes sure the buffer holds one whole reply from r, checks that it
// is well formed as redigo would, and returns its length.
func (rr *respReader) frame() (int, error) {
	p := 0    // where the next element starts, from r
	owed := 1 // elements still owed at the current level
	top := 0  // the elements of the reply, when it is an array
	stack := rr.stack[:0]
	defer func() { rr.stack = stack[:0] }()
	for {
		nl, err := rr.lineEnd(p)
		if err != nil {
			return 0, err
		}
		line := rr.buf[rr.r+p : rr.r+nl-1]
		p = nl + 1
		if len(line) == 0 {
			return 0, respError("short response line")
		}
		switch line[0] {
		case '+', '-':
		case ':':
			if _, err := parseRESPInt(line[1:]); err != nil {
				return 0, err
			}
		case '$':
			n, err := parseRESPLen(line[1:])
			if err != nil {
				return 0, err
			}
			if n >= 0 {
				// The bytes, then "\r\n": a wrong byte after the bytes
				// fails at once, as in redigo, not after waiting for
				// the next.
				end := p + n + 2
				if err := rr.ensure(end - 1); err != nil {
					return 0, err
				}
				if rr.buf[rr.r+end-2] != '\r' {
					return 0, respError("bad bulk string format")
				}
				if err := rr.ensure(end); err != nil {
					return 0, err
				}
				if rr.buf[rr.r+end-1] != '\n' {
					return 0, respError("bad bulk string format")
				}
				p = end
			}
		case '*':
			n, err := parseRESPLen(line[1:])
			if err != nil {
				return 0, err
			}
			if n > 0 {
				if len(stack) == 0 {
					top = n
				}
				stack = append(stack, owed)
				owed = n
				continue
			}
		default:
			return 0, respError("unexpected response line %q", line[:min(len(line), 32)])
		}
		// One element done; so are the arrays it completes.
		if len(stack) == 1 && owed > 1 && top-owed >= 15 {
			// The elements so far, 16 or more, are a sample of the rest.
			rr.hint = p + p/(top-owed+1)*(owed-1)
		}
		for owed--; owed == 0; owed-- {
			if len(stack) == 0 {
				return p, nil
			}
			owed = stack[len(stack)-1]
			stack = stack[:len(stack)-1]
		}
	}
}

// lineEnd returns where the '\n' of the line starting at p (from r) is,
// reading until the buffer holds it. The line must end in "\r\n".
func (rr *respReader) lineEnd(p int) (int, error) {
	from := p
	for {
		if i := indexLF(rr.buf[rr.r+from : rr.w]); i >= 0 {
			nl := from + i
			if nl == p || rr.buf[rr.r+nl-1] != '\r' {
				return 0, respError("bad response line terminator")
			}
			return nl, nil
		}
		from = rr.w - rr.r
		if from-p > maxRESPLen {
			return 0, respError("response line longer than %d bytes", maxRESPLen)
		}
		if err := rr.ensure(from + 1); err != nil {
			return 0, err
		}
	}
}

// indexLF is bytes.IndexByte(b, '\n') for the short lines RESP is made
// of (a "$24" header): a plain loop over the first bytes costs less than
// IndexByte's vector setup, which then takes over for long lines.
func indexLF(b []byte) int {
	for i := range min(len(b), 32) {
		if b[i] == '\n' {
			return i
		}
	}
	if len(b) <= 32 {
		return -1
	}
	if i := bytes.IndexByte(b[32:], '\n'); i >= 0 {
		return 32 + i
	}
	return -1
}

// bulkAt reads the header of the bulk string element at a[p] of a framed
// array: its length, and where its bytes start. ok is false for any other
// element, a null included.
func bulkAt(a []byte, p int) (n, start int, ok bool) {
	if p >= len(a) || a[p] != '$' {
		return 0, 0, false
	}
	q := p + 1
	for ; q < len(a) && a[q] >= '0' && a[q] <= '9'; q++ {
		n = n*10 + int(a[q]-'0')
	}
	// Framed, so the digits end in "\r\n" and the bytes follow; a null
	// ("$-1") has no digits.
	if q == p+1 || q+2+n > len(a) {
		return 0, 0, false
	}
	return n, q + 2, true
}

// ensure reads until buf[r:w] holds at least n bytes, making room first:
// the unread bytes go to the front, into a larger buffer when they and n
// need it.
func (rr *respReader) ensure(n int) error {
	if rr.w-rr.r >= n {
		return nil
	}
	if rr.r+n > len(rr.buf) {
		size := len(rr.buf)
		for size < n {
			size *= 2
		}
		if size > len(rr.buf) && rr.hint > size {
			// At most 4 times what doubling would give: the first
			// elements may be far longer than the rest (a set's order
			// is Redis's), and a corrupt count must cost no more than
			// a few times the bytes that came.
			size = min(rr.hint+rr.hint/8, 4*size)
		}
		nb := rr.buf
		if size > len(rr.buf) {
			nb = make([]byte, size)
		}
		rr.w = copy(nb, rr.buf[rr.r:rr.w])
		rr.r, rr.buf = 0, nb
	}
	if !rr.armed {
		// Like redigo's Receive: the whole reply must come within the
		// timeout (none with 0, which also clears a deadline the dial
		// may have left).
		var dl time.Time
		if rr.timeout > 0 {
			dl = time.Now().Add(rr.timeout)
		}
		if err := rr.conn.SetReadDeadline(dl); err != nil {
			return err
		}
		rr.armed = true
	}
	for rr.w-rr.r < n {
		m, err := rr.rd.Read(rr.buf[rr.w:])
		rr.w += m
		if err != nil && rr.w-rr.r < n {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// parseRESPLen parses the length of a bulk string or an array: -1 (a
// null) or a decimal number, as redigo accepts them, up to maxRESPLen.
func parseRESPLen(p []byte) (int, error) {
	if len(p) == 2 && p[0] == '-' && p[1] == '1' {
		return -1, nil
	}
	if len(p) == 0 {
		return 0, respError("malformed length")
	}
	n := 0
	for _, b := range p {
		if b < '0' || b > '9' {
			return 0, respError("illegal bytes in length")
		}
		n = n*10 + int(b-'0')
		if n > maxRESPLen {
			return 0, respError("length over %d", maxRESPLen)
		}
	}
	return n, nil
}

// parseRESPInt parses an integer reply as redigo does (an optional '-',
// then decimal digits; it wraps on overflow, as redigo's does).
func parseRESPInt(p []byte) (int64, error) {
	neg := len(p) > 0 && p[0] == '-'
	if neg {
		p = p[1:]
	}
	if len(p) == 0 {
		return 0, respError("malformed integer")
	}
	var n int64
	for _, b := range p {
		if b < '0' || b > '9' {
			return 0, respError("illegal bytes in integer")
		}
		n = n*10 + int64(b-'0')
	}
	if neg {
		n = -n
	}
	return n, nil
}

// decodeRESP decodes the framed reply at b[p:] into redigo's shapes, with
// an error reply as a redis.Error value (as redigo gives one inside an
// array), and returns where the reply ends.
func decodeRESP(b []byte, p int) (any, int, error) {
	i := bytes.IndexByte(b[p:], '\n')
	if i < 1 {
		return nil, 0, respError("truncated reply")
	}
	line := b[p : p+i-1]
	p += i + 1
	switch line[0] {
	case '+':
		switch string(line[1:]) { // no allocation: redigo shares these too
		case "OK":
			return "OK", p, nil
		case "PONG":
			return "PONG", p, nil
		}
		return string(line[1:]), p, nil
	case '-':
		return redis.Error(line[1:]), p, nil
	case ':':
		n, err := parseRESPInt(line[1:])
		return n, p, err
	case '$':
		n, err := parseRESPLen(line[1:])
		if err != nil || n < 0 {
			return nil, p, err
		}
		if p+n+2 > len(b) {
			return nil, 0, respError("truncated reply")
		}
		return bytes.Clone(b[p : p+n : p+n]), p + n + 2, nil
	case '*':
		n, err := parseRESPLen(line[1:])
		if err != nil || n < 0 {
			return nil, p, err
		}
		if n > len(b)-p { // each element takes bytes: a corrupt count
			return nil, 0, respError("truncated reply")
		}
		vs := make([]any, n)
		for j := range vs {
			if vs[j], p, err = decodeRESP(b, p); err != nil {
				return nil, 0, err
			}
		}
		return vs, p, nil
	}
	return nil, 0, respError("unexpected response line")
}

// values decodes the array into what redigo's Receive would have
// returned for it: a []any of []byte, string, int64, redis.Error, nil and
// []any.
func (a rawArray) values() (any, error) {
	v, _, err := decodeRESP(a, 0)
	return v, err
}

// stringChunk is how many bytes of ids rawArray.strings copies into one
// allocation: the ids are substrings of a few shared strings, so that
// decoding a topic of many thousand ids costs a few hundred allocations,
// not one each, and an id the caller keeps keeps at most this much memory
// alive with it.
const stringChunk = 4 << 10

// strings decodes an array of strings, as redis.Strings would from
// values: a []string straight from the bytes, with no []any between, its
// strings copied into shared chunks of stringChunk bytes (an id longer
// than that gets one of its own). An array holding anything other than
// bulk strings goes through values and redis.Strings.
func (a rawArray) strings() ([]string, error) {
	i := bytes.IndexByte(a, '\r')
	if i < 2 || a[0] != '*' {
		return redis.Strings(a.values())
	}
	n, err := parseRESPLen(a[1:i])
	if err != nil || n < 0 || n > len(a) {
		return redis.Strings(a.values())
	}
	out := make([]string, n)
	// Each chunk is filled, then its ids are cut from it, their lengths
	// read again off their elements' headers.
	var chunk strings.Builder
	first, firstAt := 0, i+2 // the chunk's first id, and where its element starts
	cut := func(last int) {
		s, from, q := chunk.String(), 0, firstAt
		for k := first; k < last; k++ {
			m, start, _ := bulkAt(a, q)
			out[k] = s[from : from+m]
			from += m
			q = start + m + 2
		}
		chunk, first, firstAt = strings.Builder{}, last, q
	}
	p := i + 2
	for k := range out {
		m, start, ok := bulkAt(a, p)
		if !ok {
			return redis.Strings(a.values())
		}
		if chunk.Len()+m > stringChunk && chunk.Len() > 0 {
			cut(k)
		}
		if chunk.Cap() == 0 {
			chunk.Grow(max(stringChunk, m))
		}
		chunk.Write(a[start : start+m])
		p = start + m + 2
	}
	cut(n)
	return out, nil
}

// replyStrings is redis.Strings for a reply that may be a rawArray.
func replyStrings(reply any, err error) ([]string, error) {
	if a, ok := reply.(rawArray); ok && err == nil {
		return a.strings()
	}
	return redis.Strings(reply, err)
}

// decodeReply turns a rawArray into redigo's shapes; any other reply is
// returned as it is.
func decodeReply(reply any, err error) (any, error) {
	if a, ok := reply.(rawArray); ok && err == nil {
		return a.values()
	}
	return reply, err
}
