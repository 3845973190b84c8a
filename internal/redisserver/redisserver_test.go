package redisserver

import (
	"errors"
	"strings"
	"testing"
)

// A server that cannot start says why, also when it fails before opening
// its log file (a bad option is reported on stderr).
func TestStartReportsWhyItFailed(t *testing.T) {
	_, err := Start("--no-such-option", "x")
	if errors.Is(err, ErrNotInstalled) {
		t.Skip(err)
	}
	if err == nil {
		t.Fatal("Start with a bad option succeeded")
	}
	if !strings.Contains(err.Error(), "no-such-option") {
		t.Fatalf("error does not say why: %v", err)
	}
}
