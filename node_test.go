package pikkuredis_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pikkujs/pikkuredis"
)

// The interop tests drive the real @pikku/redis (and ioredis) through
// interop/driver.mjs. The packages come from interop/package-lock.json:
// .ci/run installs them with `npm ci`, and so do the tests themselves when
// interop/node_modules is missing, so that `go test ./...` alone runs
// everything. Without Node.js 20 or newer, or when npm cannot install, the
// interop tests fail saying how to provide it (a run that skipped them
// would print ok); under -short they skip, as every test that needs more
// than Go does.

const interopDir = "interop"

var (
	interopOnce sync.Once
	interopNode string
	interopErr  error
)

// howToProvideNode ends the failure of an interop test without Node.js.
const howToProvideNode = "install Node.js 20 or newer with npm (https://nodejs.org; apt-get install nodejs npm where the distribution's is 20+), " +
	"then run the tests again: they run `npm ci` in interop/ themselves. " +
	"To run only the tests that need neither Redis nor Node.js: go test -short ./..."

// needNode returns the node binary, installing the interop packages first
// if needed. It skips under -short, and fails when Node.js 20+ or the
// packages are missing.
func needNode(t testing.TB) string {
	t.Helper()
	pikkuredis.SkipShort(t, "Node.js")
	interopOnce.Do(func() { interopNode, interopErr = findNode() })
	if interopErr != nil {
		t.Fatalf("the interop tests run @pikku/redis on Node.js: %v\nTo provide it, %s", interopErr, howToProvideNode)
	}
	return interopNode
}

// findNode returns node from PATH once it has checked its version and
// installed the interop packages.
func findNode() (string, error) {
	node, err := exec.LookPath("node")
	if err != nil {
		return "", errors.New("node is not on PATH")
	}
	out, err := exec.Command(node, "-p", "process.versions.node").Output()
	if err != nil {
		return "", fmt.Errorf("%s -p process.versions.node: %w", node, err)
	}
	version := strings.TrimSpace(string(out))
	major, _, _ := strings.Cut(version, ".")
	if n, err := strconv.Atoi(major); err != nil || n < 20 {
		return "", fmt.Errorf("%s is Node.js %s; the interop packages need 20 or newer", node, version)
	}
	return node, installInterop()
}

// installInterop runs `npm ci` in interop/ unless node_modules already
// holds what package-lock.json pins (npm writes its own copy of the lock
// there; an older one means a stale install).
func installInterop() error {
	lock, err := os.Stat(filepath.Join(interopDir, "package-lock.json"))
	if err != nil {
		return err
	}
	installed, err := os.Stat(filepath.Join(interopDir, "node_modules", ".package-lock.json"))
	if err == nil && !installed.ModTime().Before(lock.ModTime()) {
		return nil
	}
	npm, err := exec.LookPath("npm")
	if err != nil {
		return fmt.Errorf("npm is not on PATH")
	}
	// Bounded, so that a network that does not answer fails the interop
	// tests instead of hanging the whole run.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, npm, "ci", "--prefer-offline", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = interopDir
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("npm ci in interop/: %v\n%s", err, out)
	}
	return nil
}

// nodeDriver is one running interop/driver.mjs. Requests go to its stdin;
// answers come back on its file descriptor 3, so that nothing a library
// prints on stdout can be read as an answer (stdout and stderr are kept for
// failure messages).
type nodeDriver struct {
	stdin   io.WriteCloser
	answers chan []byte // closed when the driver closes fd 3 or exits
	output  *lockedBuffer
	mu      sync.Mutex // one request at a time, answered in order
	nextID  int
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startNode starts the driver for this test; it is stopped when the test
// ends.
func startNode(t testing.TB) *nodeDriver {
	t.Helper()
	node := needNode(t)
	answersR, answersW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(node, "driver.mjs")
	cmd.Dir = interopDir
	cmd.ExtraFiles = []*os.File{answersW} // fd 3 in the driver
	d := &nodeDriver{answers: make(chan []byte, 16), output: &lockedBuffer{}}
	cmd.Stdout, cmd.Stderr = d.output, d.output
	if d.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	err = cmd.Start()
	answersW.Close() // the driver holds its own copy
	if err != nil {
		answersR.Close()
		t.Fatalf("start node driver: %v", err)
	}
	go func() {
		defer close(d.answers)
		defer answersR.Close()
		sc := bufio.NewScanner(answersR)
		sc.Buffer(make([]byte, 1<<20), 64<<20)
		for sc.Scan() {
			d.answers <- append([]byte(nil), sc.Bytes()...)
		}
	}()
	t.Cleanup(func() {
		// At EOF on stdin the driver quits its Redis clients, closes fd 3
		// and exits. Drain what is left of its answers first, so that the
		// reader is done before Wait closes the pipes.
		d.stdin.Close()
		drained := make(chan struct{})
		go func() {
			for range d.answers {
			}
			close(drained)
		}()
		select {
		case <-drained:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-drained
			t.Errorf("node driver did not exit at EOF; output:\n%s", d.output)
		}
		if err := cmd.Wait(); err != nil && !t.Failed() {
			t.Errorf("node driver exited with %v; output:\n%s", err, d.output)
		}
	})
	return d
}

// nodeError is an error thrown on the Node.js side, such as @pikku/redis's
// "Channel not found: <id>".
type nodeError struct{ msg string }

func (e *nodeError) Error() string { return "node: " + e.msg }

// do sends one request and returns its result; undefined reports a call
// that returned undefined. A JavaScript exception is a *nodeError; a driver
// that dies or stops answering fails t, the (sub)test making the request.
func (d *nodeDriver) do(t testing.TB, req map[string]any) (result json.RawMessage, undefined bool, err error) {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	d.nextID++
	req["id"] = d.nextID
	line, err := json.Marshal(req)
	if err != nil {
		t.Fatalf("encode request %v: %v", req, err)
	}
	if _, err := d.stdin.Write(append(line, '\n')); err != nil {
		t.Fatalf("write to node driver: %v; output:\n%s", err, d.output)
	}
	var ans struct {
		ID        int             `json:"id"`
		OK        bool            `json:"ok"`
		Result    json.RawMessage `json:"result"`
		Undefined bool            `json:"undefined"`
		Error     string          `json:"error"`
	}
	timeout := time.After(30 * time.Second)
	// Answers to requests that timed out earlier may still arrive: skip
	// them.
	for ans.ID != d.nextID {
		select {
		case raw, ok := <-d.answers:
			if !ok {
				t.Fatalf("node driver exited; output:\n%s", d.output)
			}
			ans.ID = 0
			if err := json.Unmarshal(raw, &ans); err != nil || ans.ID == 0 || ans.ID > d.nextID {
				t.Fatalf("bad answer %q to %s (err %v)", raw, line, err)
			}
		case <-timeout:
			t.Fatalf("node driver did not answer %s within 30s; output:\n%s", line, d.output)
		}
	}
	if !ans.OK {
		return nil, false, &nodeError{ans.Error}
	}
	return ans.Result, ans.Undefined, nil
}

// tsStore is one @pikku/redis store living in the driver.
type tsStore struct {
	d       *nodeDriver
	url     string
	prefix  string // "" constructs the store without a prefix: its default
	version string // "0.12.3" or "0.12.18"
	kind    string // "channel", "eventhub" or "session" (0.12.18 only)
	// ttlSeconds is the session store's TTL (0: none); stores of each TTL
	// are distinct.
	ttlSeconds int
}

// call calls a method and fails the test on a JavaScript exception.
func (s tsStore) call(t testing.TB, method string, args ...any) json.RawMessage {
	t.Helper()
	res, _, err := s.try(t, method, args...)
	if err != nil {
		t.Fatalf("@pikku/redis %s %s.%s: %v", s.version, s.kind, method, err)
	}
	return res
}

// try calls a method and returns a JavaScript exception as an error.
func (s tsStore) try(t testing.TB, method string, args ...any) (json.RawMessage, bool, error) {
	t.Helper()
	var prefix any
	if s.prefix != "" {
		prefix = s.prefix
	}
	if args == nil {
		args = []any{}
	}
	req := map[string]any{
		"op": "store", "url": s.url, "version": s.version, "kind": s.kind,
		"prefix": prefix, "method": method, "args": args,
	}
	if s.ttlSeconds != 0 {
		req["ttlSeconds"] = s.ttlSeconds
	}
	return s.d.do(t, req)
}

// isNotFound tells whether a JavaScript exception is @pikku/redis's
// "Channel not found: <id>".
func isNotFound(err error, id string) bool {
	var ne *nodeError
	return errors.As(err, &ne) && ne.msg == fmt.Sprintf("Channel not found: %s", id)
}
