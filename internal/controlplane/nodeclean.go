package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cleanHost removes what a real node leaves on the machine: leftover shims and containers
// (after a crash), mounts under the node's folder, the pod bridge and the kubepods cgroups.
// It is also run before a node starts, for the leftovers of one that was killed.
func (n *realNode) cleanHost() []error {
	var errs []error
	for _, pid := range n.strayProcesses() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for _, pid := range kubepodsProcesses() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := waitGone(5*time.Second, func() []int { return append(n.strayProcesses(), kubepodsProcesses()...) }); err != nil {
		errs = append(errs, err)
	}
	if err := unmountUnder(n.dir); err != nil {
		errs = append(errs, err)
	}
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		if out, err := exec.Command("ip", "link", "delete", bridgeName).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("deleting bridge %s: %w: %s", bridgeName, err, out))
		}
	}
	if err := removeKubepodsCgroups(); err != nil {
		errs = append(errs, err)
	}
	removeKubeletChains()
	// Folders the kubelet, containerd and libcni make at fixed places whatever their own
	// folders are; removed only when empty (or holding only the kubelet's socket), as another
	// runtime on the machine would keep its files there.
	_ = os.Remove("/var/lib/kubelet/device-plugins/kubelet.sock")
	for _, d := range []string{"/run/containerd/s", "/run/containerd/runc/k8s.io", "/run/containerd/runc", "/run/containerd", "/var/lib/cni/results", "/var/lib/cni",
		"/var/lib/kubelet/device-plugins", "/var/lib/kubelet", "/var/log/containers"} {
		_ = os.Remove(d)
	}
	return errs
}

// kubeletChains are the iptables chains the kubelet adds (kube-proxy --cleanup removes only
// kube-proxy's): KUBE-FIREWALL drops traffic to 127.0.0.0/8 from elsewhere, so it must go.
var kubeletChains = []struct{ table, chain string }{
	{"filter", "KUBE-FIREWALL"}, {"filter", "KUBE-KUBELET-CANARY"}, {"nat", "KUBE-KUBELET-CANARY"},
	{"mangle", "KUBE-KUBELET-CANARY"}, {"mangle", "KUBE-IPTABLES-HINT"},
}

func removeKubeletChains() {
	for _, ipt := range []string{"iptables", "ip6tables"} {
		if _, err := exec.LookPath(ipt); err != nil {
			continue
		}
		for _, from := range []string{"INPUT", "OUTPUT"} {
			for range 10 { // once per copy of the jump; stops when none is left
				if exec.Command(ipt, "-w", "-t", "filter", "-D", from, "-j", "KUBE-FIREWALL").Run() != nil {
					break
				}
			}
		}
		for _, c := range kubeletChains {
			_ = exec.Command(ipt, "-w", "-t", c.table, "-F", c.chain).Run()
			_ = exec.Command(ipt, "-w", "-t", c.table, "-X", c.chain).Run()
		}
	}
}

// kubeChains lists the KUBE-* chains and rules left in the machine's iptables and ip6tables.
func kubeChains() []string {
	var left []string
	for _, save := range []string{"iptables-save", "ip6tables-save"} {
		out, err := exec.Command(save).Output()
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(out), "\n") {
			if strings.Contains(line, "KUBE-") {
				left = append(left, save+": "+line)
			}
		}
	}
	return left
}

// ReleaseDir stops processes whose command line names dir and unmounts everything under it, so
// that dir can be removed: removing it with a volume of a killed node still bind-mounted below
// would delete the host folder behind the volume. It touches nothing outside dir.
func ReleaseDir(dir string) error {
	n := &realNode{dir: dir}
	for _, pid := range n.strayProcesses() {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	if err := waitGone(5*time.Second, n.strayProcesses); err != nil {
		return err
	}
	return unmountUnder(dir)
}

// NodeLeftovers lists what of a real node under dir is still on the machine: processes, mounts,
// the bridge, kubepods cgroups, the kubelet's and kube-proxy's iptables chains and the files the
// kubelet and libcni keep at fixed places. Empty means the machine is clean. Only meaningful
// while no other real node runs (Stop checks it before releasing RealNodeLock).
func NodeLeftovers(dir string) []string {
	n := &realNode{dir: dir}
	var left []string
	for _, pid := range n.strayProcesses() {
		left = append(left, fmt.Sprintf("process %d (%s)", pid, cmdline(pid)))
	}
	for _, pid := range kubepodsProcesses() {
		left = append(left, fmt.Sprintf("container process %d (%s)", pid, cmdline(pid)))
	}
	for _, m := range mountsUnder(dir) {
		left = append(left, "mount "+m)
	}
	if _, err := os.Stat("/sys/class/net/" + bridgeName); err == nil {
		left = append(left, "bridge "+bridgeName)
	}
	for _, c := range kubepodsCgroups() {
		left = append(left, "cgroup "+c)
	}
	left = append(left, kubeChains()...)
	for _, d := range []string{"/var/lib/kubelet/device-plugins/kubelet.sock", "/var/lib/cni/results"} {
		if _, err := os.Stat(d); err == nil {
			left = append(left, d)
		}
	}
	return left
}

// strayProcesses are node processes whose command line names the node's folder: containerd,
// the kubelet, kube-proxy and, above all, the shims containerd daemonised, which no parent stops.
func (n *realNode) strayProcesses() []int {
	var pids []int
	entries, _ := os.ReadDir("/proc")
	self := os.Getpid()
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		if c := cmdline(pid); strings.Contains(c, n.dir+"/") || strings.Contains(c, n.dir+" ") {
			pids = append(pids, pid)
		}
	}
	return pids
}

func cmdline(pid int) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})))
}

func waitGone(timeout time.Duration, list func() []int) error {
	deadline := time.Now().Add(timeout)
	for {
		left := list()
		if len(left) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("processes %v did not end", left)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// mountsUnder lists mount points at or below dir, deepest first.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var mounts []string
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 5 {
			continue
		}
		mp := unescapeMount(f[4])
		if mp == dir || strings.HasPrefix(mp, dir+"/") {
			mounts = append(mounts, mp)
		}
	}
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i]) > len(mounts[j]) })
	return mounts
}

// unescapeMount undoes mountinfo's octal escapes (\040 for a space).
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// unmountUnder detaches every mount under dir; the kubelet bind-mounts its root folder onto
// itself, and volumes, rootfs and network namespaces are mounted below it.
func unmountUnder(dir string) error {
	for range 5 {
		mounts := mountsUnder(dir)
		if len(mounts) == 0 {
			return nil
		}
		for _, m := range mounts {
			_ = syscall.Unmount(m, syscall.MNT_DETACH)
		}
	}
	if left := mountsUnder(dir); len(left) > 0 {
		return fmt.Errorf("could not unmount %s", strings.Join(left, ", "))
	}
	return nil
}

// kubepodsCgroups lists the kubelet's cgroup trees (cgroupfs driver) in every hierarchy.
func kubepodsCgroups() []string {
	var dirs []string
	roots, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		roots = append(roots, "/sys/fs/cgroup/kubepods")
	}
	for _, r := range roots {
		_ = filepath.WalkDir(r, func(p string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, p)
			}
			return nil
		})
	}
	return dirs
}

func kubepodsProcesses() []int {
	var pids []int
	for _, c := range kubepodsCgroups() {
		b, err := os.ReadFile(filepath.Join(c, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				pids = append(pids, pid)
			}
		}
	}
	sort.Ints(pids)
	return compactInts(pids)
}

func compactInts(s []int) []int {
	var out []int
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}

// removeKubepodsCgroups removes the trees deepest first; a cgroup with no processes left can
// be removed with rmdir even though it still lists control files.
func removeKubepodsCgroups() error {
	dirs := kubepodsCgroups()
	sort.Slice(dirs, func(i, j int) bool { return len(dirs[i]) > len(dirs[j]) })
	var errs []error
	for _, d := range dirs {
		if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", d, err))
		}
	}
	return errors.Join(errs...)
}
