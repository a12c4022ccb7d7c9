// Package localkiln runs Kiln on this machine: a full local control plane with simulated GPU
// nodes, Kiln's CRDs and its manager, kept running in the background by a supervisor process
// until `kubectl kiln dev down`.
package localkiln

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// State is what a running local Kiln records in its folder, for `up`, `down` and `status`.
type State struct {
	PID        int       `json:"pid"`
	Server     string    `json:"server"`
	KubeConfig string    `json:"kubeconfig"`
	Pools      string    `json:"pools"`
	Listening  []string  `json:"listening"`
	LogDir     string    `json:"logDir"`
	Started    time.Time `json:"started"`
	// Registry is the local registry's address (127.0.0.1:PORT) behind kiln.local; empty
	// without a real node.
	Registry string `json:"registry,omitempty"`
}

// RegistryAddress returns the address of the running local Kiln's registry, where images named
// kiln.local/NAME:TAG are pushed (see controlplane.ResolveLocalImage), or an error saying why
// there is none.
func RegistryAddress(dir string) (string, error) {
	s, err := ReadState(dir)
	if err != nil {
		return "", err
	}
	if s == nil || s.Server == "" {
		return "", errors.New("the local Kiln is not running: start it with `kubectl kiln dev up`")
	}
	if s.Registry == "" {
		return "", errors.New("the local Kiln runs without a real node, so it has no image registry (see `kubectl kiln dev up --help`)")
	}
	return s.Registry, nil
}

const (
	stateFile      = "state.json"
	pidFile        = "supervisor.pid"
	supervisorLog  = "supervisor.log"
	kubeconfigFile = "kubeconfig"
)

// DefaultDir is where the local Kiln keeps its state unless KILN_DEV_DIR says otherwise.
func DefaultDir() string {
	if d := os.Getenv("KILN_DEV_DIR"); d != "" {
		return d
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "kiln-dev")
	}
	return filepath.Join(home, ".kiln", "dev")
}

// ReadState returns the state of a running local Kiln, or nil when none runs. State left by a
// supervisor that died is removed.
func ReadState(dir string) (*State, error) {
	pid, err := readPID(dir)
	if err != nil || pid == 0 {
		return nil, err
	}
	if !isSupervisor(pid) {
		cleanup(dir)
		return nil, nil
	}
	b, err := os.ReadFile(filepath.Join(dir, stateFile))
	if errors.Is(err, os.ErrNotExist) {
		return &State{PID: pid}, nil // starting, not ready yet
	}
	if err != nil {
		return nil, err
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, stateFile), err)
	}
	return &s, nil
}

func readPID(dir string) (int, error) {
	b, err := os.ReadFile(filepath.Join(dir, pidFile))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return 0, nil
	}
	return pid, nil
}

// isSupervisor tells a live supervisor from a dead one, or from another process that got its PID.
func isSupervisor(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(stat)
	if fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:]); len(fields) == 0 || fields[0] == "Z" {
		return false
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	return err == nil && strings.Contains(string(cmdline), "\x00dev\x00serve")
}

func cleanup(dir string) {
	for _, f := range []string{stateFile, pidFile} {
		_ = os.Remove(filepath.Join(dir, f))
	}
}

// Supervisor is a started `dev serve` process.
type Supervisor struct {
	PID    int
	exited chan struct{}
	err    error
}

// StartSupervisor launches `<self> dev serve` in its own session, so that it outlives the
// command that started it and everything it runs can be found and stopped as one group.
func StartSupervisor(dir string, args []string) (*Supervisor, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, supervisorLog))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(self, append([]string{"dev", "serve", "--state-dir", dir}, args...)...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the local Kiln supervisor: %w", err)
	}
	s := &Supervisor{PID: cmd.Process.Pid, exited: make(chan struct{})}
	if err := os.WriteFile(filepath.Join(dir, pidFile), []byte(strconv.Itoa(s.PID)+"\n"), 0o600); err != nil {
		_ = cmd.Process.Kill()
		return nil, err
	}
	go func() { s.err = cmd.Wait(); close(s.exited) }()
	return s, nil
}

// WaitReady waits until the supervisor reports the plane ready, relaying its progress lines.
func (sup *Supervisor) WaitReady(ctx context.Context, dir string, timeout time.Duration, progress io.Writer) (*State, error) {
	deadline := time.Now().Add(timeout)
	logPath := filepath.Join(dir, supervisorLog)
	var shown int
	relay := func() {
		b, _ := os.ReadFile(logPath)
		lines := strings.Split(string(b), "\n")
		for ; shown < len(lines)-1; shown++ {
			fmt.Fprintln(progress, lines[shown])
		}
	}
	for {
		relay()
		select {
		case <-sup.exited:
			relay()
			cleanup(dir)
			return nil, fmt.Errorf("the local Kiln stopped while starting (%v); see %s", sup.err, logPath)
		default:
		}
		if b, err := os.ReadFile(filepath.Join(dir, stateFile)); err == nil {
			var s State
			if err := json.Unmarshal(b, &s); err == nil {
				return &s, nil
			}
		}
		if time.Now().After(deadline) {
			_ = Stop(dir, 30*time.Second)
			return nil, fmt.Errorf("the local Kiln did not become ready within %s; see %s", timeout, logPath)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// Stop ends a running local Kiln and everything it started. It is not an error when none runs.
func Stop(dir string, timeout time.Duration) error {
	pid, err := readPID(dir)
	if err != nil {
		return err
	}
	var listening []string
	if s, _ := ReadState(dir); s != nil {
		listening = s.Listening
	}
	if pid != 0 && isSupervisor(pid) {
		_ = syscall.Kill(pid, syscall.SIGTERM)
		deadline := time.Now().Add(timeout)
		for isSupervisor(pid) && time.Now().Before(deadline) {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if pid != 0 {
		// Whatever is left of the supervisor's session (it if it hung, or an orphaned
		// component) is killed, so nothing outlives `down`.
		for _, p := range sessionMembers(pid) {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		for i := 0; i < 50 && len(sessionMembers(pid)) > 0; i++ {
			time.Sleep(100 * time.Millisecond)
		}
		if left := sessionMembers(pid); len(left) > 0 {
			return fmt.Errorf("processes %v of the local Kiln did not stop", left)
		}
	}
	cleanup(dir)
	for _, addr := range listening {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return fmt.Errorf("something still listens on %s after stopping the local Kiln", addr)
		}
	}
	return nil
}

// sessionMembers lists the processes of session sid.
func sessionMembers(sid int) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp session …
		s := string(b)
		fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(fields) > 3 {
			if sess, _ := strconv.Atoi(fields[3]); sess == sid && fields[0] != "Z" {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}
