package pikkuredis

import (
	"strings"
	"sync"
	"testing"
)

// What -short means for this package's tests: run only those that need
// neither Redis nor Node.js (nor redis-server, redis-cli, Docker), so that
// `go test -short ./...` works on a machine with Go alone. Every test that
// needs one of them calls SkipShort first (through needRedis or needNode
// in the external tests), and TestMain (integration_test.go) prints how
// many were skipped, so that a -short run never looks like a full one.
//
// It lives here, in an internal test file, because the internal tests
// (pipeline_internal_test.go, repair_internal_test.go) and the external
// ones share one test binary and one count. Test files are not part of
// the package: SkipShort is exported only to pikkuredis_test.

var shortSkips struct {
	mu    sync.Mutex
	tests map[string]bool // top-level test names
}

// SkipShort skips t under -short, saying it needs what (e.g. "Redis"), and
// counts its top-level test once however many of its subtests skip.
func SkipShort(t testing.TB, what string) {
	t.Helper()
	if !testing.Short() {
		return
	}
	top, _, _ := strings.Cut(t.Name(), "/")
	shortSkips.mu.Lock()
	if shortSkips.tests == nil {
		shortSkips.tests = map[string]bool{}
	}
	shortSkips.tests[top] = true
	shortSkips.mu.Unlock()
	t.Skipf("-short: needs %s", what)
}

// ShortSkipped is how many top-level tests SkipShort skipped so far.
func ShortSkipped() int {
	shortSkips.mu.Lock()
	defer shortSkips.mu.Unlock()
	return len(shortSkips.tests)
}
