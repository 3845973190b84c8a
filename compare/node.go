package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// nodeBench is interop/bench.mjs running on Node.js: the @pikku/redis side
// of the comparison. One process serves the whole invocation, so that
// Node's start-up and JIT warm-up are paid once; each cell is one request.
type nodeBench struct {
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	answers *os.File // read end of the pipe that is the child's fd 3
	reader  *bufio.Reader
	exited  chan struct{}
	waitErr error
}

type nodeVersions struct {
	Node       string `json:"node"`
	IORedis    string `json:"ioredis"`
	PikkuRedis string `json:"pikkuRedis"`
}

// findInterop returns the interop directory of the checkout the runner is
// started in (from the repository root or any directory below it).
func findInterop() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		p := filepath.Join(dir, "interop")
		if _, err := os.Stat(filepath.Join(p, "bench.mjs")); err == nil {
			return p, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("interop/bench.mjs not found in this directory or above: run from the pikkuredis checkout (go -C compare run .)")
		}
		dir = parent
	}
}

// ensureNodeModules runs `npm ci` in interop/ when its packages are missing,
// as the interop tests do.
func ensureNodeModules(interop string) error {
	if _, err := os.Stat(filepath.Join(interop, "node_modules", "@pikku", "redis", "package.json")); err == nil {
		return nil
	}
	fmt.Fprintln(os.Stderr, "compare: installing interop/node_modules with npm ci")
	cmd := exec.Command("npm", "ci", "--no-audit", "--no-fund")
	cmd.Dir = interop
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm ci in %s: %w", interop, err)
	}
	return nil
}

// startNode starts bench.mjs and sends it hello: the Redis URL, the key
// prefix of the TypeScript side and the workload constants.
func startNode(interop, url, prefix string) (*nodeBench, nodeVersions, error) {
	r, w, err := os.Pipe()
	if err != nil {
		return nil, nodeVersions{}, fmt.Errorf("pipe for node answers: %w", err)
	}
	cmd := exec.Command("node", filepath.Join(interop, "bench.mjs"))
	cmd.Dir = interop
	// Answers come on fd 3; anything the libraries print goes to our
	// stderr, away from the table on stdout.
	cmd.ExtraFiles = []*os.File{w}
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		r.Close()
		w.Close()
		return nil, nodeVersions{}, fmt.Errorf("stdin pipe for node: %w", err)
	}
	if err := cmd.Start(); err != nil {
		r.Close()
		w.Close()
		return nil, nodeVersions{}, fmt.Errorf("start node %s: %w", filepath.Join(interop, "bench.mjs"), err)
	}
	w.Close() // the child holds it now; our copy would keep EOF from coming
	n := &nodeBench{cmd: cmd, stdin: stdin, answers: r, reader: bufio.NewReader(r), exited: make(chan struct{})}
	go func() { n.waitErr = cmd.Wait(); close(n.exited) }()

	var v nodeVersions
	req := map[string]any{"cmd": "hello", "url": url, "prefix": prefix, "workload": wl}
	if err := n.call(req, 30*time.Second, &v); err != nil {
		n.close()
		return nil, nodeVersions{}, fmt.Errorf("node bench.mjs hello: %w", err)
	}
	return n, v, nil
}

// run measures one @pikku/redis operation, called with args, at the
// given concurrency.
func (n *nodeBench) run(tsOp string, args any, callers int, tm timing, limit int) (result, error) {
	req := map[string]any{
		"cmd": "run", "op": tsOp, "args": args, "callers": callers, "limit": limit,
		"warmupMs": tm.warmup.Milliseconds(), "durationMs": tm.duration.Milliseconds(),
	}
	var res result
	if err := n.call(req, tm.warmup+tm.duration+time.Minute, &res); err != nil {
		return result{}, fmt.Errorf("@pikku/redis %s, %d callers: %w", tsOp, callers, err)
	}
	return res, nil
}

// call sends one request and reads its answer, waiting at most timeout.
func (n *nodeBench) call(req any, timeout time.Duration, out any) error {
	line, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := n.stdin.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("write request: %w (node exited? %v)", err, n.exitStatus())
	}
	if err := n.answers.SetReadDeadline(time.Now().Add(timeout)); err != nil {
		return err
	}
	answer, err := n.reader.ReadBytes('\n')
	if err != nil {
		if errors.Is(err, io.EOF) {
			return fmt.Errorf("node closed its answers: %v", n.exitStatus())
		}
		return fmt.Errorf("read answer: %w", err)
	}
	var a struct {
		OK     bool            `json:"ok"`
		Error  string          `json:"error"`
		Result json.RawMessage `json:"result"`
	}
	if err := json.Unmarshal(answer, &a); err != nil {
		return fmt.Errorf("bad answer %q: %w", answer, err)
	}
	if !a.OK {
		if strings.Contains(a.Error, errNoCalls.Error()) {
			return fmt.Errorf("%w: %s", errNoCalls, a.Error)
		}
		return errors.New(a.Error)
	}
	if err := json.Unmarshal(a.Result, out); err != nil {
		return fmt.Errorf("bad result %s: %w", a.Result, err)
	}
	return nil
}

func (n *nodeBench) exitStatus() string {
	select {
	case <-n.exited:
		return fmt.Sprintf("exit status: %v", n.waitErr)
	case <-time.After(2 * time.Second):
		return "still running"
	}
}

// close ends the process the polite way (EOF on stdin makes bench.mjs quit
// its Redis client and exit), and kills it if that takes too long.
func (n *nodeBench) close() {
	n.stdin.Close()
	select {
	case <-n.exited:
	case <-time.After(10 * time.Second):
		n.cmd.Process.Kill()
		<-n.exited
	}
	n.answers.Close()
}
