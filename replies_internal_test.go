package pikkuredis

import (
	"errors"
	"fmt"
	"io"
	"testing"

	"github.com/gomodule/redigo/redis"
)

// TestClassifyReplies: the replies that retire a connection, as Redis 7
// words them, and a sample of those that must not (an answer to the call
// on a good connection). DENIED cannot be provoked on loopback, where
// protected mode lets every connection in; it is checked here.
func TestClassifyReplies(t *testing.T) {
	for _, c := range []struct {
		err   error
		want  replyKind
		retry bool
	}{
		{redis.Error("READONLY You can't write against a read only replica."), retireRefused, true},
		{redis.Error("READONLY You can't write against a read only replica. script: e8a1cc01, on @user_script:1."), retireRefused, true},
		{redis.Error("MASTERDOWN Link with MASTER is down and replica-serve-stale-data is set to 'no'."), retireRefused, true},
		{redis.Error("ERR max number of clients reached"), retireRefused, true},
		{redis.Error("ERR max number of clients + cluster connections reached"), retireRefused, true},
		{redis.Error("DENIED Redis is running in protected mode because protected mode is enabled and no password is set"), retireRefused, true},
		{redis.Error("ERR Protocol error: invalid bulk length"), retireBadCall, false},
		{&notRun{reply: redis.Error("ERR Protocol error: invalid bulk length")}, answer, true},
		{redis.Error("LOADING Redis is loading the dataset in memory"), answer, false},
		{redis.Error("NOSCRIPT No matching script. Please use EVAL."), answer, false},
		{redis.Error("OOM command not allowed when used memory > 'maxmemory'."), answer, false},
		{redis.Error("WRONGTYPE Operation against a key holding the wrong kind of value"), answer, false},
		{redis.Error("ERR Error running script: READONLY in a message"), answer, false},
		{fmt.Errorf("wrapped: %w", redis.Error("READONLY You can't write")), answer, false},
		{io.EOF, answer, false},
		{nil, answer, false},
	} {
		if got := classify(c.err); got != c.want {
			t.Errorf("classify(%v) = %d, want %d", c.err, got, c.want)
		}
		if got := retryable(c.err); got != c.retry {
			t.Errorf("retryable(%v) = %v, want %v", c.err, got, c.retry)
		}
	}
	err := describe(redis.Error("READONLY You can't write against a read only replica."))
	var reply redis.Error
	if !errors.As(err, &reply) || !isConnFault(err) {
		t.Errorf("describe(READONLY) = %#v: not a connection fault wrapping the reply", err)
	}
}
