// Package proc reads what the benchmarks report about processes from /proc: CPU time, peak
// memory, and the control plane's processes among the benchmark's children.
package proc

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CPUTime is a process's user+system CPU time (clock ticks of 10 ms); 0 when it is gone.
func CPUTime(pid int) time.Duration {
	f := statFields(pid)
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// PeakRSS is a process's high-water resident memory in bytes.
func PeakRSS(pid int) int64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			kb, _ := strconv.ParseInt(strings.Fields(line)[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

// Children are the pids of this process's direct children by command name (kube-apiserver,
// etcd, ...), as the control plane starts them.
func Children() map[string]int {
	out := map[string]int{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	self := strconv.Itoa(os.Getpid())
	for _, d := range dirs {
		pid, _ := strconv.Atoi(filepath.Base(d))
		f := statFields(pid)
		if len(f) < 2 || f[1] != self {
			continue
		}
		if comm, err := os.ReadFile(d + "/comm"); err == nil {
			out[strings.TrimSpace(string(comm))] = pid
		}
	}
	return out
}

// statFields are the fields of /proc/PID/stat after the command name: state, ppid, ...
func statFields(pid int) []string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil
	}
	s := string(b)
	return strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
}

// Quiet waits, up to limit, until a process used at most share of a core over a second, so
// a benchmark's round starts on a settled API server, not on the previous round's tail.
func Quiet(pid int, share float64, limit time.Duration) {
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); {
		before := CPUTime(pid)
		time.Sleep(time.Second)
		if CPUTime(pid)-before <= time.Duration(share*float64(time.Second)) {
			return
		}
	}
}
