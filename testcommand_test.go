//go:build linux || darwin

package pikkuredis_test

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
)

// TestTheTestCommandNeverPassesSilently runs this package's own test
// binary on a machine without Redis, Docker or Node.js (an empty PATH, a
// DOCKER_HOST that does not answer, no REDIS_URL): the test command must
// fail saying how to provide what is missing, and -short must pass saying
// what it left out. The binary is built once (go test -c) and run with
// each environment.
func TestTheTestCommandNeverPassesSilently(t *testing.T) {
	if onCluster() {
		t.Skip("the cluster run's child: its parent runs this")
	}
	bin := buildTestBinary(t)

	t.Run("without Redis the tests fail", func(t *testing.T) {
		out, err := runBare(t, bin, "-test.run", "^TestKeysLayout$")
		wantExit(t, err, 1, out)
		for _, want := range []string{
			"need a real Redis and found none",
			"apt-get install redis-server",
			"Docker daemon",
			"REDIS_URL=redis://",
			"go test -short ./...",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})

	t.Run("-short passes and says what it skipped", func(t *testing.T) {
		out, err := runBare(t, bin, "-test.short", "-test.run", "^(TestKeysLayout|TestAddThenGet|TestInteropSameBytes)$")
		wantExit(t, err, 0, out)
		want := "pikkuredis tests: -short: ran only the tests that need neither Redis nor Node.js; 2 need them and were skipped\n"
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	})

	// Without -run, -short leaves the runnable examples out: their //
	// Output: needs Redis. (-skip leaves the tests out too, to keep this
	// quick: an example that ran would fail the run.)
	t.Run("-short leaves the examples out", func(t *testing.T) {
		out, err := runBare(t, bin, "-test.short", "-test.skip", "^(Test|Fuzz)")
		wantExit(t, err, 0, out)
		if want := "the runnable examples need Redis too and were not run"; !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	})

	t.Run("without Node.js the interop tests fail", func(t *testing.T) {
		needRedis(t)
		out, err := runBare(t, bin, "-test.run", "^TestInteropSameBytes$", "REDIS_URL="+redisURL)
		wantExit(t, err, 1, out)
		for _, want := range []string{"--- FAIL: TestInteropSameBytes", "node is not on PATH", "install Node.js 20"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
	})
}

// buildTestBinary compiles this package's tests into a temporary
// directory.
func buildTestBinary(t *testing.T) string {
	t.Helper()
	goBin := filepath.Join(runtime.GOROOT(), "bin", "go")
	if _, err := os.Stat(goBin); err != nil {
		if goBin, err = exec.LookPath("go"); err != nil {
			t.Fatalf("no go command to build the test binary with: %v", err)
		}
	}
	bin := filepath.Join(t.TempDir(), "pikkuredis.test")
	if out, err := exec.Command(goBin, "test", "-c", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("go test -c: %v\n%s", err, out)
	}
	return bin
}

// runBare runs the test binary with args (a trailing NAME=value is set in
// its environment instead) on an empty PATH, without REDIS_URL or CI, with
// a Docker host that does not exist, and in a session of its own: with no
// controlling terminal, what testnote prints goes to stderr. It returns
// stdout and stderr together.
func runBare(t *testing.T, bin string, args ...string) (string, error) {
	t.Helper()
	var env []string
	for _, kv := range os.Environ() {
		switch name, _, _ := strings.Cut(kv, "="); name {
		case "PATH", "REDIS_URL", "CI", "DOCKER_HOST", clusterURLEnv:
		default:
			env = append(env, kv)
		}
	}
	env = append(env, "PATH="+t.TempDir(), "DOCKER_HOST=unix:///nonexistent")
	for len(args) > 0 && strings.Contains(args[len(args)-1], "=") && !strings.HasPrefix(args[len(args)-1], "-") {
		env = append(env, args[len(args)-1])
		args = args[:len(args)-1]
	}
	cmd := exec.Command(bin, append(args, "-test.count=1")...)
	cmd.Env = env
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func wantExit(t *testing.T, err error, code int, out string) {
	t.Helper()
	got := 0
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		got = exit.ExitCode()
	} else if err != nil {
		t.Fatalf("run the test binary: %v", err)
	}
	if got != code {
		t.Fatalf("exit status %d, want %d; output:\n%s", got, code, out)
	}
}
