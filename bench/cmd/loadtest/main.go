// Command loadtest runs the feedgate load-test suite: our edge, the
// Centrifuge-based peer (cmd/peer) and the ceiling server, each in turn,
// under the same generated load, all on loopback.
//
//	go run ./cmd/loadtest -scenario all            # full run (10-15 minutes)
//	go run ./cmd/loadtest -scenario all -quick     # smoke run (2-3 minutes)
//	go run ./cmd/loadtest -scenario fanout -targets peer,ceiling
//
// The generator re-executes itself under `taskset -c 1` so that it never
// shares a core with the server under test (pinned to CPU 0).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/feedgate/feedgate/bench/suite"
	"golang.org/x/sys/unix"
)

func main() {
	scenario := flag.String("scenario", "all", "all, or a comma-separated list of: "+strings.Join(suite.AllScenarios, ", "))
	quick := flag.Bool("quick", false, "short windows and smaller counts (smoke test, about two minutes)")
	name := flag.String("name", "", "results folder name under -out (default: quick or full)")
	out := flag.String("out", "results", "results root folder")
	targets := flag.String("targets", "", "comma-separated subset of ours,peer,ceiling,sink (default: all available)")
	profile := flag.Bool("profile", false, "capture CPU and allocation profiles of each server at its fanout knee")
	ceiling := flag.String("ceiling-dir", "../../shared/ceiling", "source folder of the ceiling server")
	pin := flag.Bool("pin", true, "pin servers to CPU 0 and the generator to the other CPUs")
	cpuProfile := flag.String("cpuprofile", "", "write the generator's own CPU profile to this file")
	flag.Parse()

	serverCore := -1
	if *pin {
		if n := suite.OnlineCPUs(); n < 2 {
			fmt.Fprintln(os.Stderr, "loadtest: fewer than 2 CPUs: not pinning")
		} else {
			reexecPinned(n)
			serverCore = 0
		}
	}
	scen := suite.AllScenarios
	if *scenario != "all" {
		scen = strings.Split(*scenario, ",")
	}
	if *name == "" {
		*name = "full"
		if *quick {
			*name = "quick"
		}
	}
	var tg []string
	if *targets != "" {
		tg = strings.Split(*targets, ",")
	}
	benchDir, _ := filepath.Abs(".")
	if _, err := os.Stat(filepath.Join(benchDir, "cmd", "peer")); err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: run me from the bench folder (where cmd/peer is)")
		os.Exit(2)
	}
	ceilDir, _ := filepath.Abs(*ceiling)
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadtest:", err)
			os.Exit(1)
		}
		pprof.StartCPUProfile(f)
		defer pprof.StopCPUProfile()
	}
	err := suite.Run(suite.Options{
		Name: *name, OutRoot: *out, Quick: *quick, Scenarios: scen, Targets: tg, Profile: *profile,
		BenchDir: benchDir, CeilingDir: ceilDir, ServerCore: serverCore, Out: os.Stdout,
	})
	if err != nil {
		pprof.StopCPUProfile()
		fmt.Fprintln(os.Stderr, "loadtest:", err)
		os.Exit(1)
	}
}

// reexecPinned re-executes the process under taskset on CPUs 1..n-1 unless
// it already runs there, so every generator thread stays off CPU 0.
func reexecPinned(n int) {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) == nil && !set.IsSet(0) {
		return
	}
	if os.Getenv("LOADTEST_PINNED") != "" {
		return // taskset did not take; carry on rather than loop
	}
	self, err := os.Executable()
	if err != nil {
		return
	}
	tsk, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Fprintln(os.Stderr, "loadtest: taskset not found: generator not pinned")
		return
	}
	cpus := fmt.Sprintf("1-%d", n-1)
	argv := append([]string{"taskset", "-c", cpus, self}, os.Args[1:]...)
	err = syscall.Exec(tsk, argv, append(os.Environ(), "LOADTEST_PINNED=1"))
	fmt.Fprintln(os.Stderr, "loadtest: re-exec under taskset:", err)
}
