package suite

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Binaries are the servers built for a run; an empty path means the server
// is unavailable, with the reason in the matching Why field.
type Binaries struct {
	Edge, Peer, Ceiling    string
	Sink                   string // cmd/sink: the generator's yardstick for connection rates
	EdgeWhy, CeilingWhy    string
	EdgeHelp               string // output of edge -h, to see which flags exist
	EdgeSource             string // commit the edge was built from, and whether the tree had changes
	RepoDir, CeilingSrcDir string
}

// EdgeHas reports whether the edge's -h output mentions flag (without dash).
func (b *Binaries) EdgeHas(flag string) bool {
	return strings.Contains(b.EdgeHelp, "-"+flag+" ") || strings.Contains(b.EdgeHelp, "-"+flag+"\n") ||
		strings.Contains(b.EdgeHelp, "-"+flag+"=")
}

// Build compiles the peer and the sink (from benchDir), our edge (from the
// repository root, benchDir/..) and the ceiling server (from ceilingDir)
// into tmp.
func Build(benchDir, ceilingDir, tmp string) (*Binaries, error) {
	b := &Binaries{RepoDir: filepath.Dir(benchDir), CeilingSrcDir: ceilingDir}
	b.Peer = filepath.Join(tmp, "peer")
	if out, err := goBuild(benchDir, b.Peer, "./cmd/peer"); err != nil {
		return nil, fmt.Errorf("build peer: %v\n%s", err, out)
	}
	b.Sink = filepath.Join(tmp, "sink")
	if out, err := goBuild(benchDir, b.Sink, "./cmd/sink"); err != nil {
		return nil, fmt.Errorf("build sink: %v\n%s", err, out)
	}
	edge := filepath.Join(tmp, "edge")
	if _, err := os.Stat(filepath.Join(b.RepoDir, "cmd", "edge")); err != nil {
		b.EdgeWhy = "cmd/edge does not exist"
	} else if out, err := goBuild(b.RepoDir, edge, "./cmd/edge"); err != nil {
		b.EdgeWhy = fmt.Sprintf("cmd/edge does not build: %s", firstLines(out, 3))
	} else {
		b.Edge = edge
		help, _ := exec.Command(edge, "-h").CombinedOutput()
		b.EdgeHelp = string(help)
		b.EdgeSource = gitDescribe(b.RepoDir)
	}
	ceil := filepath.Join(tmp, "ceiling")
	if _, err := os.Stat(filepath.Join(ceilingDir, "main.go")); err != nil {
		b.CeilingWhy = ceilingDir + " does not exist"
	} else if out, err := goBuild(ceilingDir, ceil, "."); err != nil {
		b.CeilingWhy = fmt.Sprintf("ceiling does not build: %s", firstLines(out, 3))
	} else {
		b.Ceiling = ceil
	}
	return b, nil
}

func goBuild(dir, out, pkg string) (string, error) {
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, pkg)
	cmd.Dir = dir
	o, err := cmd.CombinedOutput()
	return string(o), err
}

func firstLines(s string, n int) string {
	l := strings.Split(strings.TrimSpace(s), "\n")
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, " | ")
}

// gitDescribe names the commit of dir and says whether files outside bench/
// differed from it when the edge was built.
func gitDescribe(dir string) string {
	head, err := exec.Command("git", "-C", dir, "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "unknown (not a git work tree)"
	}
	d := "commit " + strings.TrimSpace(string(head))
	if st, _ := exec.Command("git", "-C", dir, "status", "--porcelain", "--", ".", ":!bench").Output(); len(st) > 0 {
		d += " plus uncommitted changes"
	}
	return d
}
