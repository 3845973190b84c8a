package pikkuredis

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// ErrEvictionPolicy is returned by Init (wrapped, naming the policy) when
// the server's maxmemory-policy is one of the allkeys-* policies
// (allkeys-lru, allkeys-lfu, allkeys-random). Under them Redis, once at
// maxmemory, evicts any key, the topic and subs sets included: a topic
// then reads as empty with no error while channels are subscribed to it,
// and the two index directions disagree. Set maxmemory-policy to
// noeviction (writes that add data then fail with an OOM error and write
// nothing), or to a volatile-* policy, which evicts only keys with a TTL
// and so never these, which have none.
//
// Init checks the policy last, after loading the scripts, so a caller who
// accepts the risk can go on after errors.Is(err, ErrEvictionPolicy).
// Where the server refuses the check (an ACL user without +info, a
// managed Redis that renamed INFO), Init skips it.
var ErrEvictionPolicy = errors.New("unsafe eviction policy")

// checkEvictionPolicy reads maxmemory_policy from INFO memory (which
// managed services that disable CONFIG still answer) and refuses the
// allkeys-* policies. An error reply to INFO means the check cannot be
// made here: it passes. A connection error is returned.
func (c *conn) checkEvictionPolicy(ctx context.Context) error {
	info, err := redis.String(c.do(ctx, "INFO", "memory"))
	if err != nil {
		if isReplyError(err) {
			return nil
		}
		return fmt.Errorf("check maxmemory-policy: %w", err)
	}
	policy := infoField(info, "maxmemory_policy")
	if strings.HasPrefix(policy, "allkeys-") {
		return fmt.Errorf("%w: maxmemory-policy is %s, under which Redis at maxmemory evicts the topic and subs sets "+
			"(topics read as empty, the two index directions disagree); set maxmemory-policy to noeviction, "+
			"or to a volatile-* policy, which never evicts these keys since they have no TTL",
			ErrEvictionPolicy, policy)
	}
	return nil
}

// infoField returns the value of one "name:value" line of an INFO reply,
// or "" when it has none.
func infoField(info, name string) string {
	sc := bufio.NewScanner(strings.NewReader(info))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), name+":"); ok {
			return v
		}
	}
	return ""
}
