package controlplane

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Probes look at the machine; DetectRealNode takes them as values so tests can play any machine.
type Probes struct {
	// EUID is the effective user ID.
	EUID func() int
	// ReadFile reads a file such as /proc/filesystems.
	ReadFile func(string) ([]byte, error)
	// Exists reports whether a path exists.
	Exists func(string) bool
	// LookPath finds a program on PATH (and in the system folders).
	LookPath func(string) (string, error)
	// NodeIP fails when the machine has no address pods could reach the API server at.
	NodeIP func() error
}

// HostProbes look at this machine.
func HostProbes() Probes {
	return Probes{
		EUID:     os.Geteuid,
		ReadFile: os.ReadFile,
		Exists:   func(p string) bool { _, err := os.Stat(p); return err == nil },
		LookPath: func(name string) (string, error) {
			if p, err := exec.LookPath(name); err == nil {
				return p, nil
			}
			for _, d := range []string{"/usr/sbin", "/sbin"} {
				if p := filepath.Join(d, name); fileExists(p) {
					return p, nil
				}
			}
			return "", fmt.Errorf("%s not found", name)
		},
		NodeIP: func() error { _, err := nodeIP(); return err },
	}
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// DetectRealNode says why this machine cannot run a real node, or "" when it can. The reason
// names the first missing capability and what would provide it.
func DetectRealNode(p Probes) string {
	if p.EUID() != 0 {
		return "not running as root (containerd, the kubelet and pod networking need it)"
	}
	if reason := cgroupsMissing(p); reason != "" {
		return reason
	}
	for _, ns := range []string{"user", "mnt", "net", "pid", "ipc", "uts"} {
		if !p.Exists("/proc/self/ns/" + ns) {
			return "the kernel has no " + ns + " namespaces"
		}
	}
	fs, err := p.ReadFile("/proc/filesystems")
	if err != nil || !hasFilesystem(string(fs), "overlay") {
		return "the kernel has no overlay filesystem (modprobe overlay)"
	}
	for _, prog := range []struct{ name, pkg string }{
		{"runc", "runc"}, {"iptables", "iptables"}, {"conntrack", "conntrack"}, {"ip", "iproute2"},
	} {
		if _, err := p.LookPath(prog.name); err != nil {
			return fmt.Sprintf("%s is not installed (apt-get install %s, or make tools)", prog.name, prog.pkg)
		}
	}
	for _, plugin := range []string{"bridge", "host-local", "portmap", "loopback"} {
		if !p.Exists(filepath.Join(cniBinDir, plugin)) {
			return fmt.Sprintf("the CNI plugin %s is missing from %s (apt-get install containernetworking-plugins, or make tools)", plugin, cniBinDir)
		}
	}
	if !p.Exists("/proc/sys/net/bridge") {
		return "bridged traffic cannot pass iptables: no br_netfilter (modprobe br_netfilter)"
	}
	if err := p.NodeIP(); err != nil {
		return "no network address for the node: " + err.Error()
	}
	return ""
}

// cgroupsMissing accepts cgroup v2 with the cpu, memory and pids controllers, or v1 with those
// hierarchies mounted.
func cgroupsMissing(p Probes) string {
	want := []string{"cpu", "memory", "pids"}
	if b, err := p.ReadFile("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		have := strings.Fields(string(b))
		for _, c := range want {
			if !contains(have, c) {
				return "cgroup v2 lacks the " + c + " controller"
			}
		}
		return ""
	}
	for _, c := range want {
		if !p.Exists("/sys/fs/cgroup/" + c) {
			return "no cgroups: neither cgroup v2 nor a v1 " + c + " hierarchy under /sys/fs/cgroup"
		}
	}
	return ""
}

func hasFilesystem(procFilesystems, name string) bool {
	for _, line := range strings.Split(procFilesystems, "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && f[len(f)-1] == name {
			return true
		}
	}
	return false
}

func contains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}
