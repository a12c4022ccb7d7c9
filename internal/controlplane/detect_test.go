package controlplane

import (
	"errors"
	"os"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// machine is a pretend host: files with content, paths that exist, programs on PATH.
type machine struct {
	euid     int
	files    map[string]string
	paths    map[string]bool
	programs map[string]bool
	ipErr    error
}

func (m machine) probes() Probes {
	return Probes{
		EUID: func() int { return m.euid },
		ReadFile: func(p string) ([]byte, error) {
			if c, ok := m.files[p]; ok {
				return []byte(c), nil
			}
			return nil, os.ErrNotExist
		},
		Exists: func(p string) bool { return m.paths[p] },
		LookPath: func(n string) (string, error) {
			if m.programs[n] {
				return "/usr/sbin/" + n, nil
			}
			return "", errors.New("not found")
		},
		NodeIP: func() error { return m.ipErr },
	}
}

// capable is a Debian host with cgroup v2 and every package installed.
func capable() machine {
	m := machine{
		files: map[string]string{
			"/sys/fs/cgroup/cgroup.controllers": "cpuset cpu io memory hugetlb pids rdma misc",
			"/proc/filesystems":                 "nodev\tsysfs\nnodev\tcgroup2\nnodev\toverlay\n\text4\n",
		},
		paths:    map[string]bool{"/proc/sys/net/bridge": true},
		programs: map[string]bool{"runc": true, "iptables": true, "conntrack": true, "ip": true},
	}
	for _, ns := range []string{"user", "mnt", "net", "pid", "ipc", "uts"} {
		m.paths["/proc/self/ns/"+ns] = true
	}
	for _, p := range []string{"bridge", "host-local", "portmap", "loopback"} {
		m.paths["/usr/lib/cni/"+p] = true
	}
	return m
}

func TestDetectRealNode(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*machine)
		want   string
	}{
		{"a capable machine", func(*machine) {}, ""},
		{"cgroup v1 with the needed hierarchies", func(m *machine) {
			delete(m.files, "/sys/fs/cgroup/cgroup.controllers")
			for _, c := range []string{"cpu", "memory", "pids"} {
				m.paths["/sys/fs/cgroup/"+c] = true
			}
		}, ""},
		{"not root", func(m *machine) { m.euid = 1000 }, "not running as root (containerd, the kubelet and pod networking need it)"},
		{"no cgroups at all", func(m *machine) { delete(m.files, "/sys/fs/cgroup/cgroup.controllers") },
			"no cgroups: neither cgroup v2 nor a v1 cpu hierarchy under /sys/fs/cgroup"},
		{"cgroup v2 without the memory controller", func(m *machine) { m.files["/sys/fs/cgroup/cgroup.controllers"] = "cpu pids" },
			"cgroup v2 lacks the memory controller"},
		{"no user namespaces", func(m *machine) { delete(m.paths, "/proc/self/ns/user") }, "the kernel has no user namespaces"},
		{"no network namespaces", func(m *machine) { delete(m.paths, "/proc/self/ns/net") }, "the kernel has no net namespaces"},
		{"no overlayfs", func(m *machine) { m.files["/proc/filesystems"] = "nodev\tsysfs\n\text4\n" },
			"the kernel has no overlay filesystem (modprobe overlay)"},
		{"no iptables", func(m *machine) { delete(m.programs, "iptables") },
			"iptables is not installed (apt-get install iptables, or make tools)"},
		{"no runc", func(m *machine) { delete(m.programs, "runc") }, "runc is not installed (apt-get install runc, or make tools)"},
		{"no CNI plugins", func(m *machine) { delete(m.paths, "/usr/lib/cni/bridge") },
			"the CNI plugin bridge is missing from /usr/lib/cni (apt-get install containernetworking-plugins, or make tools)"},
		{"no br_netfilter", func(m *machine) { delete(m.paths, "/proc/sys/net/bridge") },
			"bridged traffic cannot pass iptables: no br_netfilter (modprobe br_netfilter)"},
		{"no address", func(m *machine) { m.ipErr = errors.New("no default route") }, "no network address for the node: no default route"},
		{"the first missing capability is named", func(m *machine) { m.euid = 1000; delete(m.programs, "iptables") },
			"not running as root (containerd, the kubelet and pod networking need it)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := capable()
			tc.change(&m)
			if diff := cmp.Diff(tc.want, DetectRealNode(m.probes())); diff != "" {
				t.Errorf("DetectRealNode (-want +got):\n%s", diff)
			}
		})
	}
}

func TestResolveLocalImage(t *testing.T) {
	for _, tc := range []struct {
		ref, addr, want string
		local           bool
	}{
		{"kiln.local/digits:1", "127.0.0.1:5000", "127.0.0.1:5000/digits:1", true},
		{"kiln.local/team/train@sha256:abc", "127.0.0.1:5000", "127.0.0.1:5000/team/train@sha256:abc", true},
		{"registry.example/digits:1", "127.0.0.1:5000", "registry.example/digits:1", false},
		{"kiln.localhost/digits:1", "127.0.0.1:5000", "kiln.localhost/digits:1", false},
		{"kiln.local/digits:1", "", "kiln.local/digits:1", false},
	} {
		got, local := ResolveLocalImage(tc.ref, tc.addr)
		if diff := cmp.Diff(tc.want, got); diff != "" || local != tc.local {
			t.Errorf("ResolveLocalImage(%q, %q) = %q, %v; want %q, %v", tc.ref, tc.addr, got, local, tc.want, tc.local)
		}
	}
}
