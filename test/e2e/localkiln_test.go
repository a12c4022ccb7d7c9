package e2e

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"kiln.dev/kiln/internal/localkiln"
	"kiln.dev/kiln/test/framework"
)

// kiln runs the kubectl-kiln binary built from this checkout, as a user would.
type kiln struct {
	bin, stateDir string
}

func (k kiln) run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(k.bin, args...)
	cmd.Dir = framework.RepoRoot()
	cmd.Env = append(os.Environ(), "KILN_DEV_DIR="+k.stateDir)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func buildKiln(t *testing.T) kiln {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "kubectl-kiln")
	build := exec.Command("go", "build", "-o", bin, "./cmd/kubectl-kiln")
	build.Dir = framework.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building kubectl-kiln: %v\n%s", err, out)
	}
	return kiln{bin: bin, stateDir: t.TempDir()}
}

func TestLocalKilnUpTwiceThenDownLeavesNothingBehind(t *testing.T) {
	k := buildKiln(t)
	t.Cleanup(func() { _ = localkiln.Stop(k.stateDir, 0) })

	// Simulated nodes only: test/node covers the real node, one per machine at a time.
	out, err := k.run(t, "dev", "up", "--pools", "a100=2x8,cpu=1x0", "--real-node=false")
	if err != nil {
		t.Fatalf("dev up: %v\n%s", err, out)
	}
	for _, want := range []string{"Kiln is running.", "node pools:  a100=2x8@NVIDIA-A100-SXM4-80GB,cpu=1x0", "kubectl kiln dev down"} {
		if !strings.Contains(out, want) {
			t.Errorf("dev up output lacks %q:\n%s", want, out)
		}
	}
	state, err := localkiln.ReadState(k.stateDir)
	if err != nil || state == nil {
		t.Fatalf("no state after up: %v", err)
	}

	// Plain kubectl with the written kubeconfig sees the GPU pool.
	tools, err := framework.Tools(context.Background(), "kubectl")
	if err != nil {
		t.Fatal(err)
	}
	nodes, err := exec.Command(tools["kubectl"], "--kubeconfig", state.KubeConfig, "get", "nodes",
		"-L", "nvidia.com/gpu.count", "--no-headers").CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl get nodes: %v\n%s", err, nodes)
	}
	for _, want := range []string{"a100-0 ", "a100-1 ", "cpu-0 "} {
		if !strings.Contains(string(nodes), want) {
			t.Errorf("kubectl get nodes lacks %q:\n%s", want, nodes)
		}
	}
	if strings.Count(string(nodes), " Ready ") != 3 {
		t.Errorf("want 3 Ready nodes:\n%s", nodes)
	}

	// The README's main job: every bundled example runs to the end on the local Kiln.
	out, err = k.run(t, "dev", "examples")
	if err != nil || !strings.Contains(out, "All examples succeeded") {
		t.Fatalf("dev examples: %v\n%s", err, out)
	}

	out, err = k.run(t, "dev", "up")
	if err != nil || !strings.Contains(out, "Kiln is already running") {
		t.Fatalf("second dev up should be a no-op: %v\n%s", err, out)
	}

	out, err = k.run(t, "dev", "down")
	if err != nil || !strings.Contains(out, "Kiln stopped") {
		t.Fatalf("dev down: %v\n%s", err, out)
	}
	for _, addr := range state.Listening {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			t.Errorf("%s still listens after down", addr)
		}
	}
	if isAlive(state.PID) {
		t.Errorf("supervisor %d still runs after down", state.PID)
	}
	out, err = k.run(t, "dev", "status")
	if err != nil || !strings.Contains(out, "Kiln is not running") {
		t.Fatalf("dev status after down: %v\n%s", err, out)
	}
}

// isAlive tells a running process from a finished one (gone, or a zombie not yet reaped).
func isAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	s := string(b)
	return !strings.HasPrefix(strings.TrimSpace(s[strings.LastIndexByte(s, ')')+1:]), "Z")
}

func TestLocalKilnRefusesBadInput(t *testing.T) {
	k := buildKiln(t)
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	port := strconv.Itoa(busy.Addr().(*net.TCPAddr).Port)
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"unknown pool spec", []string{"--pools", "8 GPUs"}, `node pool "8 GPUs": want [NAME=]COUNTxGPUS[@PRODUCT]`},
		{"port in use", []string{"--port", port}, "port " + port + " is already in use"},
		{"port out of range", []string{"--port", "70000"}, "--port 70000 is not a TCP port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := k.run(t, append([]string{"dev", "up"}, tc.args...)...)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("want failure mentioning %q, got %v:\n%s", tc.want, err, out)
			}
			if strings.Count(strings.TrimSpace(out), "\n") > 0 {
				t.Errorf("bad input should give one line, got:\n%s", out)
			}
		})
	}
}
