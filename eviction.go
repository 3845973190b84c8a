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
// and so never these, which have none. A SessionStore's Init refuses the
// same policies, under which Redis would evict sessions (logging users
// out); under a volatile-* policy, sessions written WithSessionTTL can be
// evicted before their TTL runs out.
//
// Init checks the policy last, after loading the scripts, so a caller who
// accepts the risk can go on after errors.Is(err, ErrEvictionPolicy).
// Init reads the policy from INFO memory, or from CONFIG GET where INFO
// is refused; where both are refused (an ACL user with neither +info nor
// +config|get, as the ACL line of docs/connections.md has), Init skips the check.
var ErrEvictionPolicy = errors.New("unsafe eviction policy")

// checkEvictionPolicy reads maxmemory_policy from INFO memory (which
// managed services that disable CONFIG still answer), or, where INFO is
// refused (an ACL user without +info, a renamed INFO), from CONFIG GET,
// and refuses the allkeys-* policies. Where both are refused the check
// cannot be made here: it passes. A connection error is returned.
// lost says what such a policy would evict, and fix what to set instead,
// for the error.
//
// On a cluster every master is asked.
func (c *conn) checkEvictionPolicy(ctx context.Context, lost, fix string) error {
	return c.eachMaster(ctx, func(do doFunc) error {
		policy, err := evictionPolicy(ctx, do)
		if err != nil {
			if isReplyError(err) {
				return nil
			}
			return fmt.Errorf("check maxmemory-policy: %w", err)
		}
		if strings.HasPrefix(policy, "allkeys-") {
			return fmt.Errorf("%w: maxmemory-policy is %s, under which Redis, once at maxmemory (set now or later), evicts %s; %s",
				ErrEvictionPolicy, policy, lost, fix)
		}
		return nil
	})
}

// evictionPolicy returns the server's maxmemory-policy ("" when it says
// none), or the error reply of the second way to ask when both are
// refused.
func evictionPolicy(ctx context.Context, do doFunc) (string, error) {
	info, err := redis.String(do(ctx, "INFO", "memory"))
	if err == nil {
		return infoField(info, "maxmemory_policy"), nil
	}
	if !isReplyError(err) {
		return "", err
	}
	kv, err := redis.StringMap(do(ctx, "CONFIG", "GET", "maxmemory-policy"))
	if err != nil {
		return "", err
	}
	return kv["maxmemory-policy"], nil
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
