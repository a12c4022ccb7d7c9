package controlplane

import (
	"bytes"
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/kubernetes"
)

// RestartAPIServer stops kube-apiserver and starts it again with the same flags, certificates
// and etcd, as an upgrade or a crash-looping control-plane node would: clients keep their
// credentials and must reconnect by themselves.
func (p *Plane) RestartAPIServer(ctx context.Context) error {
	pid, args, err := p.apiServerProcess()
	if err != nil {
		return err
	}
	old, err := os.FindProcess(pid)
	if err != nil {
		return err
	}
	if err := old.Signal(syscall.SIGTERM); err != nil {
		return fmt.Errorf("stopping kube-apiserver: %w", err)
	}
	// The process is envtest's child, not ours: watch /proc rather than wait on it. Long
	// watches keep a stopping API server busy for a minute; ten seconds of that is enough.
	for deadline := time.Now().Add(10 * time.Second); processExists(pid); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = old.Signal(syscall.SIGKILL)
		}
	}
	if p.restartedAPIServer != nil {
		<-p.restartedAPIServer.exited
	}
	proc, err := startProcess(p.Dir, "kube-apiserver-restarted", args[0], args[1:]...)
	if err != nil {
		return err
	}
	p.restartedAPIServer = proc
	cs, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return err
	}
	return poll(ctx, time.Minute, "kube-apiserver to serve again", proc.running, func(ctx context.Context) (bool, error) {
		_, err := cs.Discovery().RESTClient().Get().AbsPath("/readyz").DoRaw(ctx)
		return err == nil, err
	})
}

// apiServerProcess finds the running kube-apiserver by its binary and port.
func (p *Plane) apiServerProcess() (int, []string, error) {
	u, err := url.Parse(p.Config.Host)
	if err != nil {
		return 0, nil, err
	}
	port := "--secure-port=" + u.Port()
	procs, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	for _, f := range procs {
		raw, err := os.ReadFile(f)
		if err != nil || len(raw) == 0 {
			continue
		}
		args := strings.Split(string(bytes.TrimRight(raw, "\x00")), "\x00")
		if filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, port) {
			var pid int
			if _, err := fmt.Sscanf(filepath.Base(filepath.Dir(f)), "%d", &pid); err == nil {
				return pid, args, nil
			}
		}
	}
	return 0, nil, fmt.Errorf("no kube-apiserver process serves %s", p.Config.Host)
}

func processExists(pid int) bool {
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return false
	}
	// A zombie (exited, not yet reaped by envtest) no longer serves.
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	return err == nil && !bytes.Contains(stat, []byte(") Z "))
}
