package pikkuredis

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/gomodule/redigo/redis"
)

// script is one embedded Lua script. Calls go out as EVALSHA; when the
// server answers NOSCRIPT (it restarted, failed over, ran SCRIPT FLUSH, or
// is a node that never saw the script) the call is retried once with EVAL,
// which runs the script and puts it back into the server's cache, so the
// caller never sees the fault and later calls are EVALSHA again.
type script struct {
	name string // file name without .lua, used in errors
	src  string
	sha  string // SHA1 of src, hex: what SCRIPT LOAD returns
	// shaArg is sha as a command argument, boxed once rather than on
	// every call.
	shaArg any
}

// The registry: every script the stores run, loaded from scripts/.
var (
	subscribeScript             = mustScript("subscribe")
	unsubscribeScript           = mustScript("unsubscribe")
	setChannelFieldScript       = mustScript("set_channel_field")
	clearChannelFieldScript     = mustScript("clear_channel_field")
	removeChannelsScript        = mustScript("remove_channels")
	addChannelScript            = mustScript("add_channel")
	touchChannelsScript         = mustScript("touch_channels")
	sweepExpiredScript          = mustScript("sweep_expired")
	repairSetScript             = mustScript("repair_set")
	getChannelWithSessionScript = mustScript("get_channel_with_session")

	allScripts = []*script{subscribeScript, unsubscribeScript, setChannelFieldScript, clearChannelFieldScript, removeChannelsScript,
		addChannelScript, touchChannelsScript, sweepExpiredScript, repairSetScript, getChannelWithSessionScript}
)

func mustScript(name string) *script {
	src, err := scriptFS.ReadFile("scripts/" + name + ".lua")
	if err != nil {
		panic("pikkuredis: missing embedded script " + name + ": " + err.Error())
	}
	sum := sha1.Sum(src)
	sha := hex.EncodeToString(sum[:])
	return &script{name: name, src: string(src), sha: sha, shaArg: sha}
}

// load sends SCRIPT LOAD and checks that the server hashed the script as we did.
func (s *script) load(ctx context.Context, do doFunc) error {
	sha, err := redis.String(do(ctx, "SCRIPT", "LOAD", s.src))
	if err != nil {
		return fmt.Errorf("load script %s: %w", s.name, err)
	}
	if sha != s.sha {
		return fmt.Errorf("load script %s: server returned sha %s, want %s", s.name, sha, s.sha)
	}
	return nil
}

// run calls the script with keys and args. args[0] and args[1] must
// be left free: run fills them with the sha (or source) and the key count,
// so that callers build one slice and nothing is copied.
func (s *script) run(ctx context.Context, c *conn, numKeys int, args []any) (any, error) {
	args[0], args[1] = s.shaArg, numKeys
	reply, err := c.do(ctx, "EVALSHA", args...)
	if isNoScript(err) { // the EVALSHA is done with args: reuse them
		args[0] = s.src
		reply, err = c.do(ctx, "EVAL", args...)
	} else if err != nil && ctx.Err() != nil && strings.Contains(err.Error(), "NOSCRIPT") {
		// The NOSCRIPT came as the call's context ended (ctxErr wrapped
		// it), too late to send the script: the call ended by its
		// context, and a caller never sees NOSCRIPT.
		err = ctx.Err()
	}
	if isConnFault(err) || err == ErrClosed || err == errNoPool || errors.Is(err, ErrInvalidArgument) {
		// Not the script's error: say it as the connection's, or as the
		// store's (plain ErrClosed, as every call returns it; its options
		// refused before anything was sent).
		return nil, err
	}
	if err != nil {
		if e, ok := wrongTypeReply(err); ok {
			// The script's own error names the key (scripts/*.lua).
			err = &wrongTypeError{msg: string(e), reply: e}
		}
		return nil, fmt.Errorf("script %s: %w", s.name, err)
	}
	return reply, nil
}

func isNoScript(err error) bool {
	e, ok := err.(redis.Error)
	return ok && strings.HasPrefix(string(e), "NOSCRIPT")
}

// ScriptSHAs returns the SHA1 of every embedded script by name (for
// example "subscribe"), as SCRIPT LOAD returns it: for checking a server's
// cache, or for calling the scripts by EVALSHA from another client.
func ScriptSHAs() map[string]string {
	out := make(map[string]string, len(allScripts))
	for _, s := range allScripts {
		out[s.name] = s.sha
	}
	return out
}
