// Package testnote prints a line from a test binary where the person who
// ran go test sees it, also when the package passes.
//
// go test ./... (package list mode) throws away the output of a package
// that passes unless -v is given: a line on stderr saying "-short: 120
// tests were skipped" never reaches the terminal, and the run reads as a
// full one. Print writes to the controlling terminal instead when there is
// one, which go test does not capture; elsewhere (CI, a pipe, -v) it
// writes to stderr, which go test shows with -v or when the package fails.
package testnote

import (
	"flag"
	"fmt"
	"os"
)

// Print writes line and a newline: to stderr when -test.v is set (go test
// shows it then) or when there is no controlling terminal, else to the
// terminal (/dev/tty).
func Print(line string) {
	if v := flag.Lookup("test.v"); v != nil && v.Value.String() != "false" {
		fmt.Fprintln(os.Stderr, line)
		return
	}
	tty, err := os.OpenFile("/dev/tty", os.O_WRONLY, 0)
	if err != nil {
		fmt.Fprintln(os.Stderr, line)
		return
	}
	defer tty.Close()
	fmt.Fprintln(tty, line)
}
