package pikkuredis_test

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/gomodule/redigo/redis"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The documentation promises things the tests keep true: the script
// contracts of docs/scripts.md are the scripts' own headers, the
// compatibility matrix of docs/layout.md is the interop cases, the
// guarantees of docs/guarantees.md name tests that exist, and the snippets
// run.

var update = flag.Bool("update", false, "rewrite the generated script contracts of docs/scripts.md from the script headers")

// Where each generated or checked part of the documentation lives.
const (
	scriptsDoc    = "docs/scripts.md"
	layoutDoc     = "docs/layout.md"
	guaranteesDoc = "docs/guarantees.md"
	// connectionsDoc holds the ACL line (security_test.go).
	connectionsDoc = "docs/connections.md"
)

const (
	contractsBegin  = "<!-- BEGIN script contracts: generated from the script headers by `go test -run TestReadmeScriptContracts -update`; edit the headers, not this -->"
	contractsEnd    = "<!-- END script contracts -->"
	matrixBegin     = "<!-- BEGIN compatibility matrix: each ✓ is a case of TestInteropWithPikkuRedis -->"
	matrixEnd       = "<!-- END compatibility matrix -->"
	guaranteesBegin = "<!-- BEGIN guarantees: every test named in this table must exist -->"
	guaranteesEnd   = "<!-- END guarantees -->"
)

// between returns the text between two marker lines of a file's text.
func between(t *testing.T, file, text, begin, end string) string {
	t.Helper()
	i := strings.Index(text, begin+"\n")
	j := strings.Index(text, "\n"+end)
	require.True(t, i >= 0 && j > i, "%s lacks the markers %q ... %q", file, begin, end)
	return text[i+len(begin)+1 : j+1]
}

// scriptHeader is the contract a script file states in its header.
type scriptHeader struct {
	name, does, returns, example string
	flags                        string      // the #!lua line's flags, "" for none
	args                         [][2]string // KEYS[i] / ARGV[i] and what it is
}

var argLineRE = regexp.MustCompile(`^-- ((?:KEYS|ARGV)\[[^\]]+\])\s+(.*)$`)

var shebangRE = regexp.MustCompile(`^#!lua(?: flags=([a-z-]+(?:,[a-z-]+)*))?$`)

// parseHeader reads the leading comment of a script: the #!lua line with
// its flags, then the first paragraph says what it does, KEYS/ARGV lines
// (continued by indented lines), the Returns paragraph and the redis-cli
// example.
func parseHeader(t *testing.T, name, src string) scriptHeader {
	t.Helper()
	h := scriptHeader{name: name}
	first, rest, _ := strings.Cut(src, "\n")
	m := shebangRE.FindStringSubmatch(first)
	require.NotNil(t, m, "%s.lua starts with a #!lua line (with its flags), not %q", name, first)
	h.flags = m[1]
	var cur *string // the text a continuation line extends
	for _, line := range strings.Split(rest, "\n") {
		if !strings.HasPrefix(line, "--") {
			break
		}
		body := strings.TrimPrefix(line, "--")
		text := strings.TrimSpace(body)
		switch m := argLineRE.FindStringSubmatch(line); {
		case strings.HasPrefix(line, "-- "+name+".lua: "):
			h.does = strings.TrimPrefix(line, "-- "+name+".lua: ")
			cur = &h.does
		case m != nil:
			h.args = append(h.args, [2]string{m[1], m[2]})
			cur = &h.args[len(h.args)-1][1]
		case strings.HasPrefix(line, "-- Returns: "):
			h.returns = strings.TrimPrefix(line, "-- Returns: ")
			cur = &h.returns
		case strings.HasPrefix(text, "redis-cli --eval "):
			h.example = text
			cur = nil
		case text == "" || text == "Example:":
			cur = nil
		case cur != nil:
			*cur += " " + text
		default:
			t.Fatalf("%s.lua: header line %q belongs to nothing", name, line)
		}
	}
	require.NotEmpty(t, h.does, "%s.lua says what it does", name)
	require.NotEmpty(t, h.args, "%s.lua lists KEYS and ARGV", name)
	require.NotEmpty(t, h.returns, "%s.lua says what it returns", name)
	require.NotEmpty(t, h.example, "%s.lua has a redis-cli example", name)
	return h
}

func scriptHeaders(t *testing.T) []scriptHeader {
	t.Helper()
	files, err := filepath.Glob("scripts/*.lua")
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var out []scriptHeader
	for _, f := range files {
		src, err := os.ReadFile(f)
		require.NoError(t, err)
		out = append(out, parseHeader(t, strings.TrimSuffix(filepath.Base(f), ".lua"), string(src)))
	}
	return out
}

var keyPatternRE = regexp.MustCompile(`^(\{prefix\}:\S+)\s+(.*)$`)

func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

// renderContracts is docs/scripts.md's contract section, made from the headers.
func renderContracts(hs []scriptHeader) string {
	var b strings.Builder
	for _, h := range hs {
		fmt.Fprintf(&b, "#### `%s.lua`\n\n%s\n\n", h.name, cell(strings.ToUpper(h.does[:1])+h.does[1:]))
		b.WriteString("| argument | contract |\n| --- | --- |\n")
		for _, a := range h.args {
			desc := a[1]
			if m := keyPatternRE.FindStringSubmatch(desc); m != nil {
				desc = "`" + m[1] + "` " + m[2]
			}
			fmt.Fprintf(&b, "| `%s` | %s |\n", a[0], cell(desc))
		}
		fmt.Fprintf(&b, "| returns | %s |\n", cell(h.returns))
		flags := "none: refused under `maxmemory` (OOM) before it runs"
		if h.flags != "" {
			flags = "`" + h.flags + "`"
		}
		fmt.Fprintf(&b, "| flags | %s |\n\n```sh\n%s\n```\n\n", flags, h.example)
	}
	return b.String()
}

var refRE = regexp.MustCompile(`(KEYS|ARGV)\[([^\]]+)\]`)

// Every KEYS[i] and ARGV[i] a script's code reads is in its header, and
// every one the header lists is read: a script that takes a new argument
// must say so.
func TestScriptHeadersMatchTheCode(t *testing.T) {
	norm := func(kind, index string) string {
		return kind + "[" + strings.NewReplacer(" ", "", "*", "").Replace(index) + "]"
	}
	for _, h := range scriptHeaders(t) {
		src, err := os.ReadFile(filepath.Join("scripts", h.name+".lua"))
		require.NoError(t, err)
		var code []string
		for _, line := range strings.Split(string(src), "\n") {
			if strings.HasPrefix(line, "--") {
				continue
			}
			if i := strings.Index(line, "--"); i >= 0 {
				line = line[:i]
			}
			for _, m := range refRE.FindAllStringSubmatch(line, -1) {
				code = append(code, norm(m[1], m[2]))
			}
		}
		var header []string
		for _, a := range h.args {
			m := refRE.FindStringSubmatch(a[0])
			header = append(header, norm(m[1], m[2]))
		}
		assert.ElementsMatch(t, uniq(header), uniq(code), "%s.lua: KEYS/ARGV in the header against those its code reads", h.name)
	}
}

func uniq(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}

// The KEYS/ARGV tables of docs/scripts.md are the script headers:
// changing a script's contract without the docs fails here.
func TestReadmeScriptContracts(t *testing.T) {
	text := docText(t, scriptsDoc)
	want := renderContracts(scriptHeaders(t))
	got := between(t, scriptsDoc, text, contractsBegin, contractsEnd)
	if *update && got != want {
		text = strings.Replace(text, contractsBegin+"\n"+got, contractsBegin+"\n"+want, 1)
		require.NoError(t, os.WriteFile(scriptsDoc, []byte(text), 0o644))
		t.Log(scriptsDoc + " script contracts rewritten from the headers")
		return
	}
	assert.Equal(t, want, got, scriptsDoc+"'s script contracts differ from the script headers; run go test -run TestReadmeScriptContracts -update")
}

// Every test the Guarantees table names exists, so that no guarantee
// outlives the test that backs it.
func TestReadmeGuarantees(t *testing.T) {
	table := between(t, guaranteesDoc, docText(t, guaranteesDoc), guaranteesBegin, guaranteesEnd)
	names := regexp.MustCompile("`((?:Test|Fuzz|Example)[A-Za-z0-9_]+)`").FindAllStringSubmatch(table, -1)
	require.Greater(t, len(names), 20)
	files, err := filepath.Glob("*_test.go")
	require.NoError(t, err)
	internal, err := filepath.Glob("internal/*/*_test.go")
	require.NoError(t, err)
	files = append(files, internal...)
	defined := map[string]bool{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		require.NoError(t, err)
		for _, m := range regexp.MustCompile(`(?m)^func ((?:Test|Fuzz|Example)\w+)\(`).FindAllStringSubmatch(string(b), -1) {
			defined[m[1]] = true
		}
	}
	for _, m := range names {
		assert.True(t, defined[m[1]], "the Guarantees of %s name %s, which no test file defines", guaranteesDoc, m[1])
	}
	for i, row := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		assert.Regexp(t, "`(Test|Fuzz)", row, "guarantee row %d names no test", i+1)
	}
}

// Every ✓ of the compatibility matrix (docs/layout.md) is a case of
// TestInteropWithPikkuRedis and every case is a ✓.
func TestReadmeCompatibilityMatrix(t *testing.T) {
	table := between(t, layoutDoc, docText(t, layoutDoc), matrixBegin, matrixEnd)
	columns := [][2]string{{"0.12.3", goToTS}, {"0.12.3", tsToGo}, {"0.12.18", goToTS}, {"0.12.18", tsToGo}}
	claimed := map[string]bool{}
	seenRows := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(table), "\n")[2:] {
		cells := strings.Split(strings.Trim(line, "| "), " | ")
		require.Len(t, cells, 1+len(columns), "matrix row %q", line)
		// A method of the channel or event hub store (`addChannel`), or a
		// class's (`RedisSessionStore.set`).
		op := regexp.MustCompile("^`([A-Za-z]+(?:\\.[A-Za-z]+)?)`").FindStringSubmatch(cells[0])
		require.NotNil(t, op, "matrix row %q starts with the @pikku/redis method in backticks", line)
		assert.False(t, seenRows[op[1]], "matrix has two rows for %s", op[1])
		seenRows[op[1]] = true
		for i, col := range columns {
			c := strings.TrimSpace(cells[1+i])
			switch {
			case strings.HasPrefix(c, "✓"):
				claimed[op[1]+" "+col[0]+" "+col[1]] = true
			case strings.HasPrefix(c, "—"):
			default:
				t.Errorf("matrix cell %q of %s: want ✓ or —", c, op[1])
			}
		}
	}
	tested := map[string]bool{}
	for _, c := range interopCases() {
		tested[c.op+" "+c.version+" "+c.dir] = true
	}
	assert.Equal(t, tested, claimed, layoutDoc+" matrix (✓ cells) against the interop cases")
}

// The snippets of "Using the scripts from other languages" run: every
// header's redis-cli example, and the Node.js program, against a Redis of
// their own (they use the default prefix). The Python one is compiled.
func TestReadmeScriptSnippetsRun(t *testing.T) {
	srv := ownRedis(t)
	c := dialURL(t, srv.URL)
	defer c.Close()
	cli := needRedisCLI(t)
	// In the order a channel lives: add it with a lease, subscribe, set a
	// field, read the channel with its session, clear the field, touch its
	// lease, repair its topic, unsubscribe, remove, sweep.
	order := map[string]int{"add_channel": 0, "subscribe": 1, "set_channel_field": 2, "get_channel_with_session": 3,
		"clear_channel_field": 4, "touch_channels": 5, "repair_set": 6, "unsubscribe": 7, "remove_channels": 8, "sweep_expired": 9}
	// What each answers: an integer or an array of them (or an empty
	// one); the read, the channel add_channel's example wrote, with no
	// Pikku user and so no session.
	integers := `^((\d+\n)+|\n)$`
	answers := map[string]string{"get_channel_with_session": `^c1\nchat\n\{\}\n\d+\n\n\n$`}
	hs := scriptHeaders(t)
	examples := make([][2]string, len(order))
	for _, h := range hs {
		i, ok := order[h.name]
		require.True(t, ok, "add %s to this test's order", h.name)
		examples[i] = [2]string{h.name, h.example}
	}
	_, err := c.Do("HSET", "pikku:channel:c1", "channelId", "c1")
	require.NoError(t, err)
	for _, nameEx := range examples {
		name, ex := nameEx[0], nameEx[1]
		cmd := exec.Command("sh", "-c", strings.Replace(ex, "redis-cli ", cli+" -u "+srv.URL+" ", 1))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s: %s", ex, out)
		assert.NotContains(t, string(out), "ERR", ex)
		want, ok := answers[name]
		if !ok {
			want = integers
		}
		assert.Regexp(t, want, string(out), "%s answers as its header says", ex)
	}
	keys, err := redis.Strings(c.Do("KEYS", "*"))
	require.NoError(t, err)
	assert.Empty(t, keys, "the examples in order leave nothing")

	text := docText(t, scriptsDoc)
	t.Run("node", func(t *testing.T) {
		node := needNode(t)
		js := codeBlock(t, text, "js")
		// Written into interop/ so that it finds ioredis there; run from
		// the repository root, where it finds scripts/.
		f, err := os.CreateTemp(interopDir, "readme-snippet-*.mjs")
		require.NoError(t, err)
		t.Cleanup(func() { os.Remove(f.Name()) })
		_, err = f.WriteString(js)
		require.NoError(t, err)
		require.NoError(t, f.Close())
		cmd := exec.Command(node, f.Name())
		cmd.Env = append(os.Environ(), "REDIS_URL="+srv.URL)
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
		assert.Equal(t, codeBlock(t, text, "text"), string(out), "the output "+scriptsDoc+" shows")
		keys, err := redis.Strings(c.Do("KEYS", "*"))
		require.NoError(t, err)
		assert.Empty(t, keys, "the Node.js snippet cleans up after itself")
	})
	t.Run("python compiles", func(t *testing.T) {
		py, err := exec.LookPath("python3")
		if err != nil {
			t.Skip("python3 is not on PATH")
		}
		cmd := exec.Command(py, "-c", "import ast, sys; ast.parse(sys.stdin.read())")
		cmd.Stdin = strings.NewReader(codeBlock(t, text, "python"))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "%s", out)
	})
}

// codeBlock returns the one fenced block of a language inside the
// "Using the scripts from other languages" section of docs/scripts.md.
func codeBlock(t *testing.T, text, lang string) string {
	t.Helper()
	i := strings.Index(text, "## Using the scripts from other languages\n")
	require.True(t, i >= 0, scriptsDoc+" lacks the section")
	section := text[i:]
	if j := strings.Index(section[3:], "\n## "); j >= 0 {
		section = section[:j+3]
	}
	re := regexp.MustCompile("(?s)\n```" + lang + "\n(.*?)```\n")
	m := re.FindAllStringSubmatch(section, -1)
	require.Len(t, m, 1, "one ```%s block in the section", lang)
	return m[0][1]
}
