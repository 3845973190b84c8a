package pikkuredis

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestBreak14SkewedReplyOverallocates: respReader sizes its buffer for a
// large array from the elements framed so far, once 16 are in, up to 64
// times what doubling would give. When the first 16 elements are long and
// the rest short (ids "may be any bytes up to 512 MB", README; a set's
// order is the server's), and the buffer happens to fill up right after
// the 16th, the estimate is taken at its worst: here 128 MiB is allocated
// for a reply of 4 MiB (by the same arithmetic, 1 MiB ids first would
// make it 2 GiB for a reply of about 20 MiB).
func TestBreak14SkewedReplyOverallocates(t *testing.T) {
	const short = 200000
	header := fmt.Sprintf("*%d\r\n", 16+short)
	var b bytes.Buffer
	b.WriteString(header)
	// 16 long elements that end exactly at 1 MiB, where the buffer
	// (doubled from 32 KiB) is full.
	per := (1<<20 - len(header)) / 16
	for i := 0; i < 16; i++ {
		el := per
		if i == 15 {
			el = 1<<20 - b.Len()
		}
		n := el - 2 - 2 - len("$") // "$<n>\r\n<data>\r\n"
		for len(fmt.Sprint(n))+n+5 != el {
			n--
		}
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", n, strings.Repeat("B", n))
	}
	if b.Len() != 1<<20 {
		t.Fatalf("setup: %d", b.Len())
	}
	for i := 0; i < short; i++ {
		id := fmt.Sprintf("i%07d", i)
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(id), id)
	}
	c := newByteConn(b.Bytes(), 64<<10)
	rr := newRESPReaderSize(c, c, time.Second, respBufSize)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	v, err := rr.next()
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := v.(rawArray); !ok {
		t.Fatalf("reply %T", v)
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("reply %d bytes; the reader allocated %d bytes", b.Len(), alloc)
	if alloc > uint64(4*b.Len()) {
		t.Errorf("framing a %d-byte reply allocated %d bytes (%.0fx)", b.Len(), alloc, float64(alloc)/float64(b.Len()))
	}
}
