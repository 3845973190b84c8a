package pikkuredis_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikkujs/pikkuredis"
	"github.com/stretchr/testify/require"
)

// breakReplies are odd SMEMBERS replies a server (or something in
// between) may send.
var breakReplies = []string{
	"*3\r\n$1\r\na\r\n$-1\r\n$1\r\nb\r\n",
	"*2\r\n$1\r\na\r\n*1\r\n$1\r\nb\r\n",
	"*2\r\n:1\r\n+x\r\n",
	"*2\r\n+x\r\n$1\r\ny\r\n",
	"-WRONGTYPE Operation against a key holding the wrong kind of value\r\n",
	"*0\r\n",
	"*-1\r\n",
	"$-1\r\n",
	"$3\r\nabc\r\n",
	":7\r\n",
	"+OK\r\n",
	"*1\r\n-ERR inside\r\n",
	"*2\r\n*0\r\n*-1\r\n",
	"*1\r\n$0\r\n\r\n",
	"HTTP/1.1 400 Bad Request\r\n\r\n",
	">2\r\n$7\r\nmessage\r\n$1\r\nx\r\n",
	"%1\r\n$1\r\na\r\n$1\r\nb\r\n",
	"_\r\n",
	"$3\r\nabcd\r\n",
	"*1\r\n$3\r\nabc\n",
	":12a\r\n",
	"*1x\r\n",
	"$-2\r\n",
	"*01\r\n$1\r\na\r\n",
	"\r\n",
	"*2\r\n$1\r\na\r\n", // then the connection is closed
}

// Holds: odd SMEMBERS replies give what redigo gave (compared with
// f7e05ad: same results, error texts aside); see the report for the one
// difference (a bulk string ending in a bare LF waits for the timeout).
func TestBreak14OddReplies(t *testing.T) {
	var mu sync.Mutex
	which := 0
	url := fakeRedis(t, func(c net.Conn, args []string) {
		if args[0] != "SMEMBERS" {
			c.Write([]byte("+OK\r\n"))
			return
		}
		if strings.HasSuffix(args[1], ":ok") {
			c.Write([]byte("*1\r\n$2\r\nok\r\n"))
			return
		}
		mu.Lock()
		r := breakReplies[which]
		mu.Unlock()
		c.Write([]byte(r))
		if strings.HasPrefix(r, "*2\r\n$1\r\na\r\n") && len(r) == len("*2\r\n$1\r\na\r\n") {
			c.Close()
		}
	})
	var out strings.Builder
	for i, r := range breakReplies {
		for _, opts := range [][]pikkuredis.Option{nil, {pikkuredis.WithoutAutoPipelining()}} {
			mu.Lock()
			which = i
			mu.Unlock()
			hs, err := pikkuredis.OpenEventHubStore(url, append(opts, pikkuredis.WithIOTimeout(time.Second))...)
			require.NoError(t, err)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			ids, err := hs.GetChannelIDsForTopic(ctx, "t")
			ok, err2 := hs.GetChannelIDsForTopic(ctx, "ok")
			cancel()
			hs.Close()
			fmt.Fprintf(&out, "%q pooled=%v: ids=%#v nil=%v err=%v | next: %v %v\n", r, opts != nil, ids, ids == nil, err, ok, err2)
		}
	}
	t.Log("\n" + out.String())
	if f := os.Getenv("BREAK14_OUT"); f != "" {
		os.WriteFile(f, []byte(out.String()), 0o644)
	}
}
