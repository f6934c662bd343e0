package readme

import "strings"

// Block is one code block of a Markdown document.
type Block struct {
	Line    int    // 1-based line of its first code line
	Text    string // its code, indentation or fences removed, no trailing newline
	Heading string // the text of the last heading above it ("" if none)
}

// Blocks returns the code blocks of a Markdown document in order: fenced
// ones (``` or ~~~) and indented ones (four spaces or a tab, after a blank
// line, as CommonMark has it: an indented block cannot interrupt a
// paragraph). Inline code spans are not blocks. It never fails: text that
// is not a block is skipped.
func Blocks(src string) []Block {
	lines := strings.Split(strings.ReplaceAll(src, "\r\n", "\n"), "\n")
	var (
		out     []Block
		heading string
	)
	blank := true // the line before is blank (or the start)
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if fence, ok := fenceOpen(l); ok {
			var code []string
			j := i + 1
			for ; j < len(lines) && !fenceCloses(lines[j], fence); j++ {
				code = append(code, lines[j])
			}
			out = append(out, Block{Line: i + 2, Text: strings.Join(code, "\n"), Heading: heading})
			i = j // the closing fence, or past the end if it has none
			blank = false
			continue
		}
		if blank {
			if code, ok := unindent(l); ok && strings.TrimSpace(l) != "" {
				start := i
				lastCode := i
				codeLines := []string{code}
				for j := i + 1; j < len(lines); j++ {
					if strings.TrimSpace(lines[j]) == "" {
						codeLines = append(codeLines, "")
						continue
					}
					c, ok := unindent(lines[j])
					if !ok {
						break
					}
					codeLines = append(codeLines, c)
					lastCode = j
				}
				codeLines = codeLines[:lastCode-start+1] // no trailing blank lines
				out = append(out, Block{Line: start + 1, Text: strings.Join(codeLines, "\n"), Heading: heading})
				i = lastCode
				blank = false
				continue
			}
		}
		t := strings.TrimSpace(l)
		if strings.HasPrefix(t, "#") && !strings.HasPrefix(l, "    ") {
			if h := strings.TrimLeft(t, "#"); h == "" || strings.HasPrefix(h, " ") {
				heading = strings.TrimSpace(h)
			}
		}
		blank = t == ""
	}
	return out
}

// fenceOpen reports whether l opens a fenced block, and its fence (the run
// of backticks or tildes).
func fenceOpen(l string) (string, bool) {
	t := strings.TrimLeft(l, " ")
	if len(l)-len(t) > 3 {
		return "", false
	}
	for _, c := range []string{"`", "~"} {
		n := len(t) - len(strings.TrimLeft(t, c))
		if n >= 3 {
			// A backtick fence's info string may not contain a backtick.
			if c == "`" && strings.Contains(t[n:], "`") {
				return "", false
			}
			return t[:n], true
		}
	}
	return "", false
}

// fenceCloses reports whether l closes a block opened with fence: the same
// character, at least as many, nothing else but spaces.
func fenceCloses(l, fence string) bool {
	t := strings.TrimLeft(l, " ")
	if len(l)-len(t) > 3 {
		return false
	}
	t = strings.TrimRight(t, " ")
	n := len(t) - len(strings.TrimLeft(t, fence[:1]))
	return n >= len(fence) && n == len(t)
}

// unindent strips one level of code indentation (four spaces or a tab).
func unindent(l string) (string, bool) {
	switch {
	case strings.HasPrefix(l, "    "):
		return l[4:], true
	case strings.HasPrefix(l, "\t"):
		return l[1:], true
	}
	return "", false
}
