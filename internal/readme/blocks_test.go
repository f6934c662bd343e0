package readme

import (
	"os"
	"reflect"
	"strings"
	"testing"
)

func TestBlocks(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      []Block
	}{
		{"indented after a blank line", "# Top\n\nRun:\n\n    go run ./cmd/edge\n\nthen\n",
			[]Block{{Line: 5, Text: "go run ./cmd/edge", Heading: "Top"}}},
		{"indented block keeps inner blank lines, drops trailing ones", "text\n\n    a \\\n      b\n\n    # c\n\n\nafter\n",
			[]Block{{Line: 3, Text: "a \\\n  b\n\n# c"}}},
		{"tab indentation", "\n\tx\n", []Block{{Line: 2, Text: "x"}}},
		{"indented line inside a paragraph is no block", "para\n    not code\n", nil},
		{"fenced with info string", "## H\n```bash\necho hi\n\n    kept\n```\nx\n",
			[]Block{{Line: 3, Text: "echo hi\n\n    kept", Heading: "H"}}},
		{"tilde fence closed only by a long enough fence", "~~~~\na\n~~~\nb\n~~~~~\n",
			[]Block{{Line: 2, Text: "a\n~~~\nb"}}},
		{"unclosed fence runs to the end", "```\na\n", []Block{{Line: 2, Text: "a\n"}}},
		{"backtick in info string is inline code", "``` a ` b\n", nil},
		{"inline code is no block", "see `go run ./cmd/watch -format msgpack`\n", nil},
		{"heading inside a block is code", "# A\n\n    # not a heading\n\n    x\n",
			[]Block{{Line: 3, Text: "# not a heading\n\nx", Heading: "A"}}},
		{"CRLF", "# A\r\n\r\n    x\r\n", []Block{{Line: 3, Text: "x", Heading: "A"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Blocks(tc.src); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("Blocks(%q)\n got %+v\nwant %+v", tc.src, got, tc.want)
			}
		})
	}
}

// FuzzBlocks: any input, no panic; every block's first line is the source
// line it names, and blocks come in order.
func FuzzBlocks(f *testing.F) {
	if src, err := os.ReadFile("../../README.md"); err == nil {
		f.Add(string(src))
	}
	f.Add("x\n\n    a\n\n```\nb\n```\n~~~\n")
	f.Add("\t\n\n\t\t\n ```\n")
	f.Fuzz(func(t *testing.T, src string) {
		lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
		prev := 0
		for _, b := range Blocks(src) {
			if b.Line <= prev || b.Line < 1 {
				t.Fatalf("block at line %d after one at %d", b.Line, prev)
			}
			prev = b.Line
			if b.Line > len(lines) {
				if b.Text != "" {
					t.Fatalf("block %q at line %d past the end (%d lines)", b.Text, b.Line, len(lines))
				}
				continue
			}
			first, _, _ := strings.Cut(b.Text, "\n")
			if !strings.Contains(lines[b.Line-1], first) {
				t.Fatalf("block's first line %q is not in source line %d %q", first, b.Line, lines[b.Line-1])
			}
		}
	})
}
