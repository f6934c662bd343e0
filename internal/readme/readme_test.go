package readme

// TestREADME runs the commands README.md shows a newcomer, taken from the
// README itself (its code blocks), and checks what the README says they
// print. When someone edits the README the test follows; when it can no
// longer find a block it expects, or finds one it does not know, it fails
// and says which.
//
// What it changes, and only that:
//   - `go run ./cmd/x` is run as a binary built once with `go build`
//     (the same program; building once is faster than a `go run` per
//     block).
//   - The edge listens on 127.0.0.1 and a port the kernel picks
//     (`-addr 127.0.0.1:0`, read back from its "edge serving" log line)
//     rather than the README's :8080, which may be busy on a CI machine;
//     the watcher gets `-url ws://127.0.0.1:PORT` and `localhost:8080` in
//     the curl lines becomes `127.0.0.1:PORT`. That 8080 is what the edge
//     and the watcher default to is checked from their -h output.
//   - The environment loses EDGE_* (a newcomer has none set), the emulator
//     and the proxy variables (the traffic stays on loopback).
// Every command runs through `bash -c` from the repository root, in a
// process group of its own, stopped at the end the way a newcomer stops
// it, with Ctrl-C (SIGINT to the group); each must then exit with status
// 0 and leave no process of its group behind.

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/feedgate/feedgate/internal/edgetest"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// root is the repository root, from this package's directory.
const root = "../.."

// patience bounds every wait: generous, so that a busy CI machine does
// not fail the test, while a broken step still fails in bounded time.
const patience = 90 * time.Second

// A role is a block of the README the test knows what to do with.
type role struct {
	name, what string
	match      func(text string) bool
}

var roles = []role{
	{"edge", "run an edge: go run ./cmd/edge (development mode: it prints a key and a token)", func(s string) bool { return s == "go run ./cmd/edge" }},
	{"edge-open", "run an edge open to all, for the walk-through: go run ./cmd/edge -open", func(s string) bool { return strings.HasPrefix(s, "go run ./cmd/edge -open") }},
	{"tests", "the test command: ... go test -race ./...", func(s string) bool { return strings.Contains(s, "go test") }},
	{"watch", "the watcher: go run ./cmd/watch -channels ...", func(s string) bool {
		return strings.HasPrefix(s, "go run ./cmd/watch") && !strings.Contains(s, "msgpack")
	}},
	{"publish", "the curl publish of one message", func(s string) bool {
		return strings.HasPrefix(s, "curl") && !strings.Contains(s, `"messages"`)
	}},
	{"printed", "what the watcher prints: {\"channel\":...}", func(s string) bool { return strings.HasPrefix(s, `{"channel"`) }},
	{"batch", "the curl publish of a batch: {\"messages\":[...]}", func(s string) bool {
		return strings.HasPrefix(s, "curl") && strings.Contains(s, `"messages"`)
	}},
	{"watch-msgpack", "the msgpack watcher: go run ./cmd/watch -format msgpack ...", func(s string) bool {
		return strings.HasPrefix(s, "go run ./cmd/watch") && strings.Contains(s, "-format msgpack")
	}},
	{"two-edges", "the two-edge walk-through: deploy/local/two-edges.sh", func(s string) bool {
		return strings.HasPrefix(s, "deploy/local/two-edges.sh")
	}},
}

// block is a README block with the role the test gave it.
type block struct {
	Block
	role string
}

func (b block) String() string {
	return fmt.Sprintf("README.md:%d (%s block, under %q):\n    %s", b.Line, b.role, b.Heading,
		strings.ReplaceAll(b.Text, "\n", "\n    "))
}

// claim gives every block of the README its role, and fails on a block no
// role matches (a new block CI would not run), on a block two roles match
// and on a role no block matches (a block the README lost or changed).
func claim(t *testing.T, blocks []Block) map[string]block {
	t.Helper()
	got := map[string]block{}
	var errs []string
	for _, b := range blocks {
		var names []string
		for _, r := range roles {
			if r.match(b.Text) {
				names = append(names, r.name)
			}
		}
		switch {
		case len(names) == 0:
			errs = append(errs, fmt.Sprintf("README.md:%d: a code block this test does not know, so CI would not run it: give it a role in internal/readme/readme_test.go:\n    %s", b.Line, b.Text))
		case len(names) > 1:
			errs = append(errs, fmt.Sprintf("README.md:%d: a code block that roles %v all match: make the roles tell them apart", b.Line, names))
		case got[names[0]].Text != "":
			errs = append(errs, fmt.Sprintf("README.md:%d and :%d: two blocks for %s", got[names[0]].Line, b.Line, names[0]))
		default:
			got[names[0]] = block{b, names[0]}
		}
	}
	for _, r := range roles {
		if _, ok := got[r.name]; !ok {
			errs = append(errs, fmt.Sprintf("README.md: no code block for %q (%s): the README lost or changed it; restore it or update the role in internal/readme/readme_test.go", r.name, r.what))
		}
	}
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	return got
}

func mustRead(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, path))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestREADME(t *testing.T) {
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("the README's commands need %s: %v", tool, err)
		}
	}
	b := claim(t, Blocks(mustRead(t, "README.md")))

	t.Run("test command is what CI runs", func(t *testing.T) { checkTestCommand(t, b["tests"]) })
	t.Run("two-edge script is what CI runs", func(t *testing.T) { checkTwoEdges(t, b["two-edges"]) })

	bin := t.TempDir()
	build := exec.Command("go", "build", "-o", bin+string(filepath.Separator), "./cmd/edge", "./cmd/watch")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build ./cmd/edge ./cmd/watch: %v\n%s", err, out)
	}
	t.Run("defaults are the README's port", func(t *testing.T) { checkDefaults(t, bin) })
	t.Run("configuration table matches edge -h", func(t *testing.T) { checkConfigTable(t, bin, mustRead(t, "README.md")) })
	t.Run("walk-through", func(t *testing.T) { walkThrough(t, bin, b) })
	t.Run("development mode", func(t *testing.T) { devMode(t, bin, b) })
}

// checkTestCommand: each command of the README's test block (joined by
// &&) is a line of .ci/run, so CI runs what the README tells people to.
func checkTestCommand(t *testing.T, b block) {
	lines := map[string]bool{}
	for _, l := range strings.Split(mustRead(t, ".ci/run"), "\n") {
		lines[strings.TrimSpace(l)] = true
	}
	for _, part := range strings.Split(strings.ReplaceAll(b.Text, "\\\n", " "), "&&") {
		if part = strings.TrimSpace(part); !lines[part] {
			t.Errorf("%s\n\n.ci/run has no line %q: CI must run the README's test command", b, part)
		}
	}
}

// checkTwoEdges: the README's two-edge block runs a script that exists and
// is executable (pasted as is, it is run directly), and .ci/run runs it
// with --check. (Running it here would start Google's emulator a second
// time in CI.)
func checkTwoEdges(t *testing.T, b block) {
	script := strings.Fields(b.Text)[0]
	fi, err := os.Stat(filepath.Join(root, script))
	if err != nil {
		t.Fatalf("%s\n\n%v", b, err)
	}
	if fi.Mode()&0o111 == 0 {
		t.Errorf("%s\n\n%s is not executable (%v): pasted as is, it does not run", b, script, fi.Mode())
	}
	if !regexp.MustCompile(`(?m)^[^#\n]*\b` + regexp.QuoteMeta(script) + ` --check\b`).MatchString(mustRead(t, ".ci/run")) {
		t.Errorf("%s\n\n.ci/run does not run %s --check", b, script)
	}
}

// checkDefaults: the edge listens on :8080 and the watcher dials
// 127.0.0.1:8080 by default, as the README's commands assume; the test
// runs them on another port, so it checks this here.
func checkDefaults(t *testing.T, bin string) {
	for _, c := range []struct{ prog, want string }{
		{"edge", `-addr string` + "\n" + `.*\(default ":8080"\)`},
		{"watch", `-url string` + "\n" + `.*\(default "ws://127.0.0.1:8080"\)`},
	} {
		out, _ := exec.Command(filepath.Join(bin, c.prog), "-h").CombinedOutput()
		if !regexp.MustCompile(c.want).Match(out) {
			t.Errorf("%s -h does not show %q, which the README's commands assume:\n%s", c.prog, c.want, out)
		}
	}
}

// checkConfigTable: the README's configuration table lists every flag of
// `go run ./cmd/edge -h` and its environment variable, and nothing else.
func checkConfigTable(t *testing.T, bin, readme string) {
	out, err := exec.Command(filepath.Join(bin, "edge"), "-h").CombinedOutput()
	if err != nil {
		t.Fatalf("edge -h: %v\n%s", err, out)
	}
	help := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^\s+-([a-z][a-z0-9-]*)`).FindAllSubmatch(out, -1) {
		help["-"+string(m[1])] = true
	}
	for _, m := range regexp.MustCompile(`\(env (EDGE_[A-Z0-9_]+)`).FindAllSubmatch(out, -1) {
		help[string(m[1])] = true
	}
	_, section, ok := strings.Cut(readme, "\n## Configuration\n")
	if !ok {
		t.Fatal(`README.md has no "## Configuration" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	table := map[string]bool{}
	flagRe, envRe := regexp.MustCompile("`(-[a-z][a-z0-9-]*)`"), regexp.MustCompile("`(EDGE_[A-Z0-9_]+)`")
	for _, l := range strings.Split(section, "\n") {
		cells := strings.Split(l, "|")
		if len(cells) < 4 {
			continue
		}
		for _, m := range flagRe.FindAllStringSubmatch(cells[1], -1) {
			table[m[1]] = true
		}
		for _, m := range envRe.FindAllStringSubmatch(cells[2], -1) {
			table[m[1]] = true
		}
	}
	if len(table) == 0 || len(help) == 0 {
		t.Fatalf("found %d names in the README's table and %d in edge -h: the parsing no longer fits\n%s", len(table), len(help), out)
	}
	for n := range help {
		if !table[n] {
			t.Errorf("edge -h has %s, the README's configuration table does not", n)
		}
	}
	for n := range table {
		if !help[n] {
			t.Errorf("the README's configuration table has %s, edge -h does not", n)
		}
	}
}

// proc is a README command left running, as in a terminal of its own.
type proc struct {
	b              block
	cmd            *exec.Cmd
	stdout, stderr edgetest.SyncBuffer
	done           chan struct{} // closed once it exited
	err            error         // its exit, once done
	stopping       bool          // it was sent Ctrl-C: its exit is expected
	groupGone      bool          // no process of its group is left
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// walk is one run of the walk-through.
type walk struct {
	t     *testing.T
	bin   string
	addr  string // the edge's, once it serves
	procs []*proc
}

// fatalf fails the test on block b, with the output of every command
// started so far.
func (w *walk) fatalf(b block, format string, args ...any) {
	w.t.Helper()
	var sb strings.Builder
	fmt.Fprintf(&sb, "%s\n\n", b)
	fmt.Fprintf(&sb, format, args...)
	for _, p := range w.procs {
		fmt.Fprintf(&sb, "\n--- %s (README.md:%d): stdout\n%s--- %s: stderr\n%s", p.b.role, p.b.Line, p.stdout.String(), p.b.role, p.stderr.String())
	}
	w.t.Fatal(sb.String())
}

// rewrite turns a README command into the one the test runs (see the top
// of this file), and fails if it has a port or a `go run` the test would
// not rewrite.
func (w *walk) rewrite(b block) string {
	w.t.Helper()
	s := strings.ReplaceAll(b.Text, "go run ./cmd/edge", shellQuote(filepath.Join(w.bin, "edge"))+" -addr 127.0.0.1:0")
	if w.addr != "" {
		s = strings.ReplaceAll(s, "go run ./cmd/watch", shellQuote(filepath.Join(w.bin, "watch"))+" -url ws://"+w.addr)
		s = strings.ReplaceAll(s, "localhost:8080", w.addr)
	}
	if strings.Contains(s, "go run") || strings.Contains(s, "8080") {
		w.fatalf(b, "the test cannot run this block: it has a `go run` or a port 8080 the test does not rewrite (rewritten: %q); teach rewrite in internal/readme/readme_test.go", s)
	}
	return s
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// environ is this process's environment without what would change the
// README's commands: the edge's configuration, the emulator and proxies.
func environ() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(k, "EDGE_") || k == "PUBSUB_EMULATOR_HOST" || strings.HasSuffix(strings.ToLower(k), "_proxy") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func (w *walk) command(ctx context.Context, b block) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "bash", "-c", w.rewrite(b))
	cmd.Dir = root
	cmd.Env = environ()
	// A group of its own, so that Ctrl-C and cleanup reach all of it; gone
	// with the test process even if that is killed.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// start runs b in the background, as in a terminal of its own.
func (w *walk) start(b block) *proc {
	w.t.Helper()
	p := &proc{b: b, done: make(chan struct{})}
	p.cmd = w.command(context.Background(), b)
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		w.fatalf(b, "start: %v", err)
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	w.procs = append(w.procs, p)
	w.t.Cleanup(func() { // after a failure: nothing of it may outlive the test
		if !p.groupGone {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		}
		<-p.done
	})
	return p
}

// run runs b to its end and returns its stdout.
func (w *walk) run(b block) string {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	cmd := w.command(ctx, b)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		w.fatalf(b, "it failed: %v\nstdout: %s\nstderr: %s", err, out, stderr.String())
	}
	return string(out)
}

// waitFor polls cond until it holds, failing on block b if it does not
// within patience or if a command left running exits meanwhile.
func (w *walk) waitFor(b block, what string, cond func() bool) {
	w.t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		for _, p := range w.procs {
			if !p.stopping && p.exited() {
				w.fatalf(b, "waiting for %s: %s (README.md:%d) exited: %v", what, p.b.role, p.b.Line, p.err)
			}
		}
		if time.Now().After(deadline) {
			w.fatalf(b, "timed out after %v waiting for %s", patience, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// interrupt stops p as a newcomer would, with Ctrl-C: SIGINT to its
// group. It must exit with status 0 and leave no process behind.
func (w *walk) interrupt(p *proc) {
	w.t.Helper()
	pid := p.cmd.Process.Pid
	p.stopping = true
	if err := syscall.Kill(-pid, syscall.SIGINT); err != nil {
		w.fatalf(p.b, "Ctrl-C (SIGINT): %v", err)
	}
	select {
	case <-p.done:
	case <-time.After(patience):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		w.fatalf(p.b, "still running %v after Ctrl-C (SIGINT)", patience)
	}
	if p.err != nil {
		w.fatalf(p.b, "after Ctrl-C (SIGINT) it exited with %v, want status 0", p.err)
	}
	w.waitFor(p.b, "no process of its group left after Ctrl-C", func() bool {
		return errors.Is(syscall.Kill(-pid, 0), syscall.ESRCH)
	})
	p.groupGone = true
}

// readiness of the edge started by block b: its "edge serving" log line
// names the address; /readyz then answers 200.
func (w *walk) waitReady(p *proc) {
	w.t.Helper()
	w.waitFor(p.b, `the edge's "edge serving" log line`, func() bool {
		for _, l := range strings.Split(p.stderr.String(), "\n") {
			var e struct{ Msg, Addr string }
			if json.Unmarshal([]byte(l), &e) == nil && e.Msg == "edge serving" && e.Addr != "" {
				w.addr = e.Addr
				return true
			}
		}
		return false
	})
	hc := &http.Client{Timeout: 5 * time.Second}
	w.waitFor(p.b, "GET /readyz to answer 200", func() bool {
		resp, err := hc.Get("http://" + w.addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// published is what a curl block sends: its channel and messages.
type published struct {
	channel string
	msgs    []struct {
		Name string
		Data json.RawMessage
	}
}

func (w *walk) parsePublish(b block) published {
	w.t.Helper()
	var p published
	m := regexp.MustCompile(`/v1/channels/([^/\s]+)/messages`).FindStringSubmatch(b.Text)
	d := regexp.MustCompile(`-d '([^']*)'`).FindStringSubmatch(b.Text)
	if m == nil || d == nil {
		w.fatalf(b, "cannot find the channel (/v1/channels/X/messages) and the body (-d '...') in it")
	}
	p.channel = m[1]
	var body struct {
		Name     string
		Data     json.RawMessage
		Messages []struct {
			Name string
			Data json.RawMessage
		}
	}
	if err := json.Unmarshal([]byte(d[1]), &body); err != nil {
		w.fatalf(b, "its body is not JSON: %v", err)
	}
	p.msgs = body.Messages
	if body.Data != nil {
		p.msgs = append(p.msgs, struct {
			Name string
			Data json.RawMessage
		}{body.Name, body.Data})
	}
	return p
}

// answerIDs parses a publish answer, {"results":[{"id":...}]}.
func answerIDs(s string) ([]string, error) {
	var a struct {
		Results []struct{ ID string }
	}
	if err := json.Unmarshal([]byte(s), &a); err != nil {
		return nil, err
	}
	var ids []string
	for i, r := range a.Results {
		if r.ID == "" {
			return nil, fmt.Errorf("results[%d] has no id", i)
		}
		ids = append(ids, r.ID)
	}
	return ids, nil
}

// publish runs a curl block and checks its answer: one id per message,
// as the answer the README shows in its comment line.
func (w *walk) publish(b block) []string {
	w.t.Helper()
	want := w.parsePublish(b)
	var shown string
	for _, l := range strings.Split(b.Text, "\n") {
		if c, ok := strings.CutPrefix(strings.TrimSpace(l), "# "); ok {
			shown = c
		}
	}
	shownIDs, err := answerIDs(shown)
	if err != nil || len(shownIDs) != len(want.msgs) {
		w.fatalf(b, "the answer it shows (# ...) should have one result per message (%d): %q: %v", len(want.msgs), shown, err)
	}
	out := strings.TrimSpace(w.run(b))
	ids, err := answerIDs(out)
	if err != nil || len(ids) != len(want.msgs) {
		w.fatalf(b, "the edge answered %q, not the %d results with an id the README shows (%s): %v\n"+
			"(if publishing now needs an API key, the README's curl lines must send one and this test must supply it)",
			out, len(want.msgs), shown, err)
	}
	return ids
}

// lines parses the JSON lines a watcher printed, by id.
func lines(s string) (byID map[string]string, order []string) {
	byID = map[string]string{}
	for _, l := range strings.Split(s, "\n") {
		var m struct{ ID string }
		if json.Unmarshal([]byte(l), &m) == nil && m.ID != "" {
			byID[m.ID] = l
			order = append(order, m.ID)
		}
	}
	return byID, order
}

// keys returns the keys of a JSON object in their order.
func keys(line string) ([]string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	var ks []string
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return nil, err
		}
		ks = append(ks, k.(string))
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
	}
	return ks, nil
}

func jsonEqual(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// printedLine is a watcher's line, as the README's printed block shows it.
type printedLine struct {
	Channel, ID, Name, Pos string
	Time                   int64
	Data                   json.RawMessage
}

// checkPrinted checks the line a watcher printed for message m of pub,
// with the id the edge gave it, against the README's printed block.
func (w *walk) checkPrinted(b, printed block, line string, pub published, i int, id string) {
	w.t.Helper()
	wantKeys, _ := keys(printed.Text)
	gotKeys, err := keys(line)
	if err != nil || !reflect.DeepEqual(gotKeys, wantKeys) {
		w.fatalf(b, "the watcher printed %s\nwith the keys %v, the README shows %v (%s): %v", line, gotKeys, wantKeys, printed, err)
	}
	var got printedLine
	if err := json.Unmarshal([]byte(line), &got); err != nil {
		w.fatalf(b, "the watcher printed %s: %v", line, err)
	}
	m := pub.msgs[i]
	if got.Channel != pub.channel || got.ID != id || got.Name != m.Name || !jsonEqual(got.Data, m.Data) || got.Time <= 0 || got.Pos == "" {
		w.fatalf(b, "the watcher printed\n%s\nfor message %d published as {channel %q, id %q, name %q, data %s}: want those, a time and a pos", line, i, pub.channel, id, m.Name, m.Data)
	}
}

func walkThrough(t *testing.T, bin string, b map[string]block) {
	w := &walk{t: t, bin: bin}

	// The README's own blocks agree: the watcher watches the channel the
	// curl lines publish on, and the printed line is the first publish.
	pub, batch := w.parsePublish(b["publish"]), w.parsePublish(b["batch"])
	for _, name := range []string{"watch", "watch-msgpack"} {
		if !regexp.MustCompile(`-channels \S*\b` + regexp.QuoteMeta(pub.channel) + `\b`).MatchString(b[name].Text) {
			w.fatalf(b[name], "it does not watch %s, the channel the publish block (README.md:%d) publishes on", pub.channel, b["publish"].Line)
		}
	}
	if batch.channel != pub.channel || len(batch.msgs) < 2 || len(pub.msgs) != 1 {
		w.fatalf(b["batch"], "want a batch of several messages on %s, after a publish of one (README.md:%d)", pub.channel, b["publish"].Line)
	}
	var shown printedLine
	if err := json.Unmarshal([]byte(b["printed"].Text), &shown); err != nil || shown.Channel != pub.channel ||
		shown.Name != pub.msgs[0].Name || !jsonEqual(shown.Data, pub.msgs[0].Data) || shown.Time <= 0 || shown.Pos == "" || shown.ID == "" {
		w.fatalf(b["printed"], "it should be the message of the publish block (README.md:%d) as the watcher prints it: %v", b["publish"].Line, err)
	}

	// Terminal 1: the edge.
	edge := w.start(b["edge-open"])
	w.waitReady(edge)

	// Terminal 2: the watcher; it says "attached <channel>" on stderr.
	watch := w.start(b["watch"])
	w.waitFor(b["watch"], "the watcher to attach", func() bool {
		return strings.Contains(watch.stderr.String(), "attached "+pub.channel)
	})

	// Terminal 3: publish, then the batch; the watcher prints each.
	var all []string
	for _, step := range []struct {
		b   block
		pub published
	}{{b["publish"], pub}, {b["batch"], batch}} {
		ids := w.publish(step.b)
		all = append(all, ids...)
		w.waitFor(step.b, fmt.Sprintf("the watcher to print %v", ids), func() bool {
			got, _ := lines(watch.stdout.String())
			for _, id := range ids {
				if got[id] == "" {
					return false
				}
			}
			return true
		})
		got, _ := lines(watch.stdout.String())
		for i, id := range ids {
			w.checkPrinted(step.b, b["printed"], got[id], step.pub, i, id)
		}
	}

	// Another terminal: the msgpack watcher, then publish again (the
	// batch): it prints the same lines as the JSON watcher, and only those.
	mp := w.start(b["watch-msgpack"])
	w.waitFor(b["watch-msgpack"], "the msgpack watcher to attach", func() bool {
		return strings.Contains(mp.stderr.String(), "attached "+pub.channel)
	})
	ids := w.publish(b["batch"])
	all = append(all, ids...)
	w.waitFor(b["watch-msgpack"], fmt.Sprintf("both watchers to print %v", ids), func() bool {
		j, _ := lines(watch.stdout.String())
		m, _ := lines(mp.stdout.String())
		for _, id := range ids {
			if j[id] == "" || m[id] == "" {
				return false
			}
		}
		return true
	})
	j, jOrder := lines(watch.stdout.String())
	m, mOrder := lines(mp.stdout.String())
	for i, id := range ids {
		w.checkPrinted(b["watch-msgpack"], b["printed"], m[id], batch, i, id)
		if !jsonEqual([]byte(m[id]), []byte(j[id])) {
			w.fatalf(b["watch-msgpack"], "it printed\n%s\nthe JSON watcher\n%s", m[id], j[id])
		}
	}
	if !reflect.DeepEqual(mOrder, ids) {
		w.fatalf(b["watch-msgpack"], "it printed the ids %v, want only those published after it attached, in order: %v", mOrder, ids)
	}
	if !reflect.DeepEqual(jOrder, all) {
		w.fatalf(b["watch"], "it printed the ids %v, want each published one once, in order: %v", jOrder, all)
	}

	// Ctrl-C in each terminal, the edge last; then its port is free.
	w.interrupt(mp)
	w.interrupt(watch)
	w.interrupt(edge)
	ln, err := net.Listen("tcp", w.addr)
	if err != nil {
		w.fatalf(b["edge-open"], "its port is still taken after it stopped: %v", err)
	}
	ln.Close()
}

// devMode: the README's first command, `go run ./cmd/edge` with nothing
// configured, prints an API key and a subscriber token; the key publishes
// (the walk-through's publish block, with the key), no credential does not.
func devMode(t *testing.T, bin string, b map[string]block) {
	w := &walk{t: t, bin: bin}
	edge := w.start(b["edge"])
	w.waitReady(edge)
	var key, token string
	w.waitFor(b["edge"], "the development banner (API key and token) on stderr", func() bool {
		out := edge.stderr.String()
		key = regexp.MustCompile(`(?m)^\s+(dev:[A-Za-z0-9]+)\s*$`).FindString(out)
		token = regexp.MustCompile(`(?m)^\s+(eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)\s*$`).FindString(out)
		return key != "" && token != ""
	})
	key = strings.TrimSpace(key)
	pub := w.parsePublish(b["publish"])
	post := func(auth string) int {
		body, _ := json.Marshal(pub.msgs[0])
		req, _ := http.NewRequest(http.MethodPost, "http://"+w.addr+"/v1/channels/"+pub.channel+"/messages", bytes.NewReader(body))
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
		if err != nil {
			w.fatalf(b["edge"], "publish: %v", err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := post(key); code != http.StatusOK {
		w.fatalf(b["edge"], "a publish with the printed API key answered %d, want 200", code)
	}
	if code := post(""); code != http.StatusUnauthorized {
		w.fatalf(b["edge"], "a publish without credentials answered %d, want 401 (development mode is not open)", code)
	}
	w.interrupt(edge)
}
