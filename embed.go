package pikkuredis

import "embed"

// scriptFS holds the Lua scripts, one file per multi-key operation. Each file
// starts with a header stating its KEYS, ARGV and return value, so any Redis
// client in any language can load and call the same files.
//
//go:embed scripts/*.lua
var scriptFS embed.FS
