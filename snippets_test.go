package pikkuredis_test

import (
	"bytes"
	"fmt"
	"go/format"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The documentation's Go code is meant to be pasted: every ```go block of
// the README and of docs/*.md is a whole file that compiles, passes go vet
// and is gofmt'd, and every relative link leads somewhere.

// docFiles are the Markdown files a reader navigates.
func docFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	require.NotEmpty(t, files, "docs/*.md")
	return append([]string{"README.md", "compare/README.md", "CHANGELOG.md"}, files...)
}

// docText returns a documentation file's text.
func docText(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	return string(b)
}

// goBlock is one fenced ```go block: where it is and what it says.
type goBlock struct {
	file string
	line int // of its first line of code
	code string
}

// fencedGoBlocks returns the ```go blocks of a Markdown text.
func fencedGoBlocks(file, text string) []goBlock {
	var out []goBlock
	lines := strings.Split(text, "\n")
	for i := 0; i < len(lines); i++ {
		if strings.TrimSpace(lines[i]) != "```go" {
			continue
		}
		start := i + 1
		j := start
		for j < len(lines) && strings.TrimSpace(lines[j]) != "```" {
			j++
		}
		out = append(out, goBlock{file: file, line: start + 1, code: strings.Join(lines[start:j], "\n") + "\n"})
		i = j
	}
	return out
}

func (b goBlock) String() string {
	first, _, _ := strings.Cut(b.code, "\n")
	return fmt.Sprintf("%s:%d (%q)", b.file, b.line, first)
}

// TestDocsGoBlocksCompile writes each block as its own main package in
// one temporary module that requires this one (a replace to this
// directory), and runs go vet on them all at once. It works offline: the
// module's requirements are this module's, already in the module cache.
func TestDocsGoBlocksCompile(t *testing.T) {
	var blocks []goBlock
	for _, f := range docFiles(t) {
		if f == "compare/README.md" || f == "CHANGELOG.md" {
			continue
		}
		blocks = append(blocks, fencedGoBlocks(f, docText(t, f))...)
	}
	require.NotEmpty(t, blocks)
	for _, b := range blocks {
		assert.True(t, strings.HasPrefix(b.code, "package main\n"),
			"%s is not a whole program (package main first): write a signature listing as ```text", b)
		if formatted, err := format.Source([]byte(b.code)); err == nil && !bytes.Equal(formatted, []byte(b.code)) {
			t.Errorf("%s is not gofmt'd; gofmt gives:\n%s", b, formatted)
		}
	}
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go command on PATH")
	}
	repo, err := os.Getwd()
	require.NoError(t, err)
	dir := t.TempDir()

	// go.mod: this module's requirements (so that nothing is looked up),
	// plus this module itself from this directory.
	gomod := docText(t, "go.mod")
	gomod = regexp.MustCompile(`(?m)^module .*$`).ReplaceAllString(gomod, "module docsnippets")
	gomod += fmt.Sprintf("\nrequire github.com/pikkujs/pikkuredis v0.0.0\n\nreplace github.com/pikkujs/pikkuredis => %s\n", repo)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.mod"), []byte(gomod), 0o644))
	sum, err := os.ReadFile("go.sum")
	require.NoError(t, err)
	require.NoError(t, os.WriteFile(filepath.Join(dir, "go.sum"), sum, 0o644))

	byDir := map[string]goBlock{}
	for i, b := range blocks {
		name := fmt.Sprintf("block%02d", i+1)
		require.NoError(t, os.Mkdir(filepath.Join(dir, name), 0o755))
		require.NoError(t, os.WriteFile(filepath.Join(dir, name, "main.go"), []byte(b.code), 0o644))
		byDir[name] = b
	}
	cmd := exec.Command(goBin, "vet", "./...")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOFLAGS=-mod=mod", "GOPROXY=off", "GOWORK=off", "GOTOOLCHAIN=local")
	out, err := cmd.CombinedOutput()
	if err == nil {
		return
	}
	// Say which blocks failed, with their lines of the vet output (whose
	// line numbers are the block's, from its package clause).
	failed := map[string][]string{}
	for _, line := range strings.Split(string(out), "\n") {
		if m := regexp.MustCompile(`\b(block\d\d)/`).FindStringSubmatch(line); m != nil {
			failed[m[1]] = append(failed[m[1]], line)
		}
	}
	if len(failed) == 0 {
		t.Fatalf("go vet of the documentation's Go blocks failed: %v\n%s", err, out)
	}
	for name, lines := range failed {
		t.Errorf("%s does not compile or vet (line numbers from the block's first line):\n%s", byDir[name], strings.Join(lines, "\n"))
	}
}

var (
	mdLinkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	mdHeadingRE = regexp.MustCompile(`^#{1,6} (.+)$`)
	slugDropRE  = regexp.MustCompile(`[^\p{L}\p{N}\s_-]`)
)

// anchors returns the anchors GitHub makes of a Markdown text's headings:
// lower case, punctuation dropped, spaces as hyphens, a repeated one with
// -1, -2, ...
func anchors(text string) map[string]bool {
	out := map[string]bool{}
	seen := map[string]int{}
	fenced := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, "```") {
			fenced = !fenced
		}
		m := mdHeadingRE.FindStringSubmatch(line)
		if fenced || m == nil {
			continue
		}
		slug := strings.ReplaceAll(slugDropRE.ReplaceAllString(strings.ToLower(m[1]), ""), " ", "-")
		if n := seen[slug]; n > 0 {
			out[fmt.Sprintf("%s-%d", slug, n)] = true
		} else {
			out[slug] = true
		}
		seen[slug]++
	}
	return out
}

// TestDocsLinksResolve: every relative link of the README, docs/*.md,
// compare/README.md and the CHANGELOG names a file or directory that
// exists and, with a #fragment, a heading of that Markdown file; and the
// README links every page of docs/.
func TestDocsLinksResolve(t *testing.T) {
	pages, err := filepath.Glob("docs/*.md")
	require.NoError(t, err)
	readme := docText(t, "README.md")
	for _, p := range pages {
		assert.Contains(t, readme, "]("+filepath.ToSlash(p)+")", "the README links %s", p)
	}
	for _, f := range docFiles(t) {
		text := docText(t, f)
		fenced := false
		for n, line := range strings.Split(text, "\n") {
			if strings.HasPrefix(line, "```") {
				fenced = !fenced
			}
			if fenced {
				continue
			}
			for _, m := range mdLinkRE.FindAllStringSubmatch(line, -1) {
				target := m[1]
				if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
					continue
				}
				path, frag, _ := strings.Cut(target, "#")
				file := f
				if path != "" {
					file = filepath.Join(filepath.Dir(f), path)
					if _, err := os.Stat(file); err != nil {
						t.Errorf("%s:%d: link %q: no such file %s", f, n+1, target, file)
						continue
					}
				}
				if frag == "" {
					continue
				}
				if !strings.HasSuffix(file, ".md") {
					t.Errorf("%s:%d: link %q: a fragment of a file that is not Markdown", f, n+1, target)
					continue
				}
				if !anchors(docText(t, file))[frag] {
					t.Errorf("%s:%d: link %q: %s has no heading #%s", f, n+1, target, file, frag)
				}
			}
		}
	}
}
