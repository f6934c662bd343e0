package vcdiff

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// The third-party decoders prove the format: every delta of the corpus is
// decoded by xdelta3 and by Ably's @ably/vcdiff-decoder and compared byte
// for byte with the target. Both tools are required (.ci/deps.sh installs
// them); a missing tool fails the test rather than narrowing coverage.

// xdelta3Buffer is xdelta3's smallest source buffer (-B): its default of
// 64 MiB costs a tenth of a second per run, for inputs of at most 64 KiB.
const xdelta3Buffer = "524288"

const depsHint = "run .ci/deps.sh (installs xdelta3 and the node_modules of testdata/jsdecode)"

// mustXdelta3 returns the path of the xdelta3 binary.
func mustXdelta3(tb testing.TB) string {
	tb.Helper()
	p, err := exec.LookPath("xdelta3")
	if err != nil {
		tb.Fatalf("xdelta3 not found: %s", depsHint)
	}
	return p
}

// mustNodeHarness returns the node binary and the harness script.
func mustNodeHarness(tb testing.TB) (node, script string) {
	tb.Helper()
	node, err := exec.LookPath("node")
	if err != nil {
		tb.Fatalf("node not found: %s", depsHint)
	}
	dir, err := filepath.Abs(filepath.Join("testdata", "jsdecode"))
	if err != nil {
		tb.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "@ably", "vcdiff-decoder", "package.json")); err != nil {
		tb.Fatalf("@ably/vcdiff-decoder is not installed in %s: %s", dir, depsHint)
	}
	return node, filepath.Join(dir, "decode.js")
}

// xdelta3Decode decodes delta against source with `xdelta3 -d`.
func xdelta3Decode(tb testing.TB, bin, dir string, source, delta []byte) ([]byte, error) {
	tb.Helper()
	dp := filepath.Join(dir, "delta")
	if err := os.WriteFile(dp, delta, 0o600); err != nil {
		tb.Fatal(err)
	}
	args := []string{"-d", "-c", "-f", "-B", xdelta3Buffer}
	if len(source) > 0 {
		sp := filepath.Join(dir, "source")
		if err := os.WriteFile(sp, source, 0o600); err != nil {
			tb.Fatal(err)
		}
		args = append(args, "-s", sp)
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(bin, append(args, dp)...)
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("xdelta3 -d: %v: %s", err, stderr.String())
	}
	return out.Bytes(), nil
}

// ablyDecode decodes every delta with @ably/vcdiff-decoder in one node
// process. results[i] is the target, or errs[i] says why not.
func ablyDecode(tb testing.TB, sources, deltas [][]byte) (results [][]byte, errs []error) {
	tb.Helper()
	node, script := mustNodeHarness(tb)
	var in bytes.Buffer
	for i := range deltas {
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(sources[i]))))
		in.Write(sources[i])
		in.Write(binary.BigEndian.AppendUint32(nil, uint32(len(deltas[i]))))
		in.Write(deltas[i])
	}
	var out, stderr bytes.Buffer
	cmd := exec.Command(node, script)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = &in, &out, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("node %s: %v: %s", script, err, stderr.String())
	}
	b := out.Bytes()
	for range deltas {
		if len(b) < 5 {
			tb.Fatalf("harness output truncated after %d results", len(results))
		}
		status, n := b[0], int(binary.BigEndian.Uint32(b[1:5]))
		if len(b)-5 < n {
			tb.Fatalf("harness output truncated in result %d", len(results))
		}
		body := b[5 : 5+n]
		b = b[5+n:]
		if status == 0 {
			results, errs = append(results, body), append(errs, nil)
		} else {
			results, errs = append(results, nil), append(errs, errors.New(string(body)))
		}
	}
	if len(b) != 0 {
		tb.Fatalf("harness wrote %d bytes more than %d results", len(b), len(deltas))
	}
	return results, errs
}

func TestXdelta3DecodesEncoder(t *testing.T) {
	bin := mustXdelta3(t)
	dir := t.TempDir()
	for _, p := range testPairs() {
		t.Run(p.name, func(t *testing.T) {
			got, err := xdelta3Decode(t, bin, dir, p.source, Encode(p.source, p.target))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, p.target) {
				t.Fatalf("xdelta3 decoded %d bytes that differ from the %d-byte target", len(got), len(p.target))
			}
		})
	}
}

func TestAblyDecodesEncoder(t *testing.T) {
	ps := testPairs()
	var sources, deltas [][]byte
	for _, p := range ps {
		sources = append(sources, p.source)
		deltas = append(deltas, Encode(p.source, p.target))
	}
	results, errs := ablyDecode(t, sources, deltas)
	for i, p := range ps {
		t.Run(p.name, func(t *testing.T) {
			if errs[i] != nil {
				t.Fatalf("@ably/vcdiff-decoder: %v", errs[i])
			}
			if !bytes.Equal(results[i], p.target) {
				t.Fatalf("@ably/vcdiff-decoder decoded %d bytes that differ from the %d-byte target", len(results[i]), len(p.target))
			}
		})
	}
}

// TestDecodeXdelta3Deltas runs the decoder on deltas made by xdelta3, with
// its application header and Adler-32 checksums, and with several windows.
func TestDecodeXdelta3Deltas(t *testing.T) {
	bin := mustXdelta3(t)
	dir := t.TempDir()
	variants := map[string][]string{
		"default":        {"-S", "none"},                      // app header + Adler-32
		"no-app-header":  {"-S", "none", "-A"},                // Adler-32 only
		"no-checksum":    {"-S", "none", "-A", "-n"},          // plain RFC 3284
		"multi-window":   {"-S", "none", "-W", "16384"},       // 16 KiB windows
		"best-multi-win": {"-S", "none", "-9", "-W", "16384"}, // 16 KiB windows, slow matching
	}
	for _, p := range testPairs() {
		if len(p.source) < 4096 && !strings.HasPrefix(p.name, "odds") {
			continue // a share of the corpus, to keep the test short
		}
		for name, args := range variants {
			t.Run(p.name+"/"+name, func(t *testing.T) {
				sp, tp, dp := filepath.Join(dir, "s"), filepath.Join(dir, "t"), filepath.Join(dir, "d")
				if err := os.WriteFile(sp, p.source, 0o600); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(tp, p.target, 0o600); err != nil {
					t.Fatal(err)
				}
				var stderr bytes.Buffer
				cmd := exec.Command(bin, append(append([]string{"-e", "-f", "-B", xdelta3Buffer}, args...), "-s", sp, tp, dp)...)
				cmd.Stderr = &stderr
				if err := cmd.Run(); err != nil {
					t.Fatalf("xdelta3 -e: %v: %s", err, stderr.String())
				}
				delta, err := os.ReadFile(dp)
				if err != nil {
					t.Fatal(err)
				}
				got, err := Decode(p.source, delta, len(p.target))
				if err != nil {
					t.Fatalf("Decode of xdelta3's delta: %v", err)
				}
				if !bytes.Equal(got, p.target) {
					t.Fatalf("decoded %d bytes that differ from the %d-byte target", len(got), len(p.target))
				}
			})
		}
	}
}
