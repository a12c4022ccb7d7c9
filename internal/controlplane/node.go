package controlplane

import (
	"context"
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

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// The real node's name and pool label: CPU work lands here, GPU work on the simulated pools.
const (
	RealNodeName = "kiln-node"
	RealNodePool = "node"
	// RealNodeLock is held for a real node's lifetime: kube-proxy's iptables chains and the pod
	// bridge are global to the machine, so a second plane with a real node waits for the first.
	RealNodeLock = "/run/lock/kiln-realnode.lock"
	bridgeName   = "kiln0"
	cniNetwork   = "kiln-pods"
	cniBinDir    = "/usr/lib/cni"
)

// realNode is containerd, kubelet, kube-proxy and CoreDNS on this machine, beside the control
// plane; everything they keep lives under dir.
type realNode struct {
	dir      string
	lockPath string // RealNodeLock unless a test says otherwise
	ip       net.IP
	tools    map[string]string
	out      io.Writer
	lock     *os.File
	pki      *nodePKI
	registry *localRegistry
	sysctls  map[string]string // values before the node changed them, restored at teardown
	pauseRef string
	dnsRef   string

	containerd, kubelet, kubeProxy *process
}

func (n *realNode) path(parts ...string) string {
	return filepath.Join(append([]string{n.dir}, parts...)...)
}
func (n *realNode) sock() string { return n.path("containerd", "containerd.sock") }

// nodeEnv puts containerd v2's own shim first on PATH (an older one elsewhere fails with "type
// with url … not found") and the system folders after it, where runc, iptables and the CNI
// tools live even when the caller's PATH lacks them.
func (n *realNode) nodeEnv() []string {
	path := filepath.Dir(n.tools["containerd-shim-runc-v2"]) + ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	env := []string{"PATH=" + path}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PATH=") {
			env = append(env, kv)
		}
	}
	return env
}

// prepare takes the machine-wide lock, starts the registry with the node's images on it and
// starts containerd; the control plane comes next, then join.
func (n *realNode) prepare(ctx context.Context, registryDir, imageCache string) error {
	if err := n.takeLock(ctx); err != nil {
		return err
	}
	// Leftovers of a node that was killed rather than stopped would confuse this one.
	n.cleanHost()
	for _, d := range []string{"containerd", "cni/net.d", "cni/ipam", "kubelet", "pod-logs", "certs.d/" + LocalRegistryName} {
		if err := os.MkdirAll(n.path(d), 0o755); err != nil {
			return err
		}
	}
	regLog, err := os.Create(n.path("registry.log"))
	if err != nil {
		return err
	}
	if n.registry, err = startRegistry(registryDir, regLog); err != nil {
		return err
	}
	fmt.Fprintf(n.out, "local registry %s serves %s\n", n.registry.addr, LocalRegistryName)
	if err := n.pushNodeImages(imageCache); err != nil {
		return err
	}
	if err := n.setSysctls(); err != nil {
		return err
	}
	if err := n.writeConfigs(); err != nil {
		return err
	}
	fmt.Fprintln(n.out, "starting containerd")
	n.containerd, err = startProcessWith(n.dir, "containerd", n.tools["containerd"], n.nodeEnv(), "--config", n.path("containerd", "config.toml"))
	if err != nil {
		return err
	}
	return poll(ctx, time.Minute, "containerd to answer", n.containerd.running, func(ctx context.Context) (bool, error) {
		err := exec.CommandContext(ctx, n.tools["ctr"], "--address", n.sock(), "version").Run()
		return err == nil, err
	})
}

func (n *realNode) takeLock(ctx context.Context) error {
	path := n.lockPath
	if path == "" {
		path = RealNodeLock
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	said := false
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			n.lock = f
			return nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return fmt.Errorf("locking %s: %w", path, err)
		}
		if !said {
			fmt.Fprintf(n.out, "waiting for the other real node on this machine to stop (one at a time: %s)\n", path)
			said = true
		}
		select {
		case <-ctx.Done():
			f.Close()
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

func (n *realNode) pushNodeImages(cacheDir string) error {
	for _, im := range []struct {
		img BinaryImage
		ref *string
	}{
		{BinaryImage{Repo: "pause", Binary: n.tools["kiln-pause"], User: "65535"}, &n.pauseRef},
		{BinaryImage{Repo: "coredns", Binary: n.tools["coredns"], Args: []string{"-conf", "/etc/coredns/Corefile"}, User: "65532"}, &n.dnsRef},
	} {
		img, tag, err := im.img.Build(cacheDir)
		if err != nil {
			return fmt.Errorf("building the %s image: %w", im.img.Repo, err)
		}
		if *im.ref, err = PushImage(n.registry.addr, im.img.Repo, tag, img); err != nil {
			return err
		}
	}
	return nil
}

// setSysctls turns on what pod networking and Services need: bridged traffic through iptables
// (Service NAT between pods on one bridge) and forwarding.
func (n *realNode) setSysctls() error {
	if _, err := os.Stat("/proc/sys/net/bridge"); err != nil {
		_ = exec.Command("modprobe", "br_netfilter").Run()
	}
	n.sysctls = map[string]string{}
	for _, k := range []string{"net/bridge/bridge-nf-call-iptables", "net/ipv4/ip_forward"} {
		p := "/proc/sys/" + k
		old, err := os.ReadFile(p)
		if err != nil {
			return fmt.Errorf("reading %s: %w", p, err)
		}
		if strings.TrimSpace(string(old)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1"), 0o644); err != nil {
			return fmt.Errorf("setting %s: %w", p, err)
		}
		n.sysctls[p] = strings.TrimSpace(string(old))
	}
	return nil
}

func (n *realNode) writeConfigs() error {
	files := map[string]string{
		n.path("containerd", "config.toml"): fmt.Sprintf(containerdConfig,
			n.path("containerd", "root"), n.path("containerd", "state"), n.sock(), n.sock()+".ttrpc",
			n.path("containerd", "opt"), n.pauseRef, n.path("certs.d"), cniBinDir, n.path("cni", "net.d"), n.path("runc")),
		n.path("certs.d", LocalRegistryName, "hosts.toml"): fmt.Sprintf(registryHosts, n.registry.addr, n.registry.addr),
		n.path("cni", "net.d", "10-kiln.conflist"):         fmt.Sprintf(cniConfig, cniNetwork, bridgeName, podCIDR, n.path("cni", "ipam")),
	}
	for p, content := range files {
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			return err
		}
	}
	return nil
}

// containerdConfig: cgroupfs like the kubelet, the local pause image pinned as the sandbox, and
// restrict_oom_score_adj because some hosts (VMs) lack CAP_SYS_RESOURCE and runc then fails
// with "can't get final child's PID from pipe". Every path is under the node's folder.
const containerdConfig = `version = 3
root = %q
state = %q

[grpc]
  address = %q

[ttrpc]
  address = %q

[plugins.'io.containerd.internal.v1.opt']
  path = %q

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %q

[plugins.'io.containerd.cri.v1.runtime']
  restrict_oom_score_adj = true
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%q]
    conf_dir = %q
  [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
    runtime_type = "io.containerd.runc.v2"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
      SystemdCgroup = false
      Root = %q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
`

// registryHosts maps kiln.local to the in-process registry over plain HTTP.
const registryHosts = `server = "http://%s"

[host."http://%s"]
  capabilities = ["pull", "resolve"]
`

// cniConfig: one bridge for the node's pods, addresses kept under the node's folder. No IP
// masquerade: pods reach each other, Services and this machine, and the node adds no NAT rule
// of its own that could outlive it.
const cniConfig = `{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [
    {
      "type": "bridge",
      "bridge": %q,
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "ranges": [[{"subnet": %q}]],
        "routes": [{"dst": "0.0.0.0/0"}],
        "dataDir": %q
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
`

// join starts the kubelet and kube-proxy against the running control plane, waits for the node
// to be Ready, then runs CoreDNS on it.
func (n *realNode) join(ctx context.Context, p *Plane) error {
	kc, err := p.componentKubeconfig("system:node:" + RealNodeName)
	if err != nil {
		return err
	}
	kubeletConfig := n.path("kubelet-config.yaml")
	if err := os.WriteFile(kubeletConfig, []byte(fmt.Sprintf(kubeletConfigYAML,
		n.sock(), n.sock(), n.ip, n.pki.KubeletClientCA, clusterDNSIP, n.path("pod-logs"))), 0o644); err != nil {
		return err
	}
	fmt.Fprintf(n.out, "starting kubelet and kube-proxy: node %s at %s\n", RealNodeName, n.ip)
	n.kubelet, err = startProcessWith(n.dir, "kubelet", n.tools["kubelet"], n.nodeEnv(),
		"--config="+kubeletConfig, "--kubeconfig="+kc,
		"--root-dir="+n.path("kubelet"), "--cert-dir="+n.path("kubelet", "pki"),
		"--hostname-override="+RealNodeName, "--node-ip="+n.ip.String(),
		"--node-labels="+PoolLabel+"="+RealNodePool)
	if err != nil {
		return err
	}
	if kc, err = p.componentKubeconfig("system:kube-proxy"); err != nil {
		return err
	}
	proxyConfig := n.path("kube-proxy-config.yaml")
	if err := os.WriteFile(proxyConfig, []byte(fmt.Sprintf(kubeProxyConfigYAML, kc, RealNodeName, podCIDR)), 0o644); err != nil {
		return err
	}
	n.kubeProxy, err = startProcessWith(n.dir, "kube-proxy", n.tools["kube-proxy"], n.nodeEnv(), "--config="+proxyConfig)
	if err != nil {
		return err
	}
	cs, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return err
	}
	if err := poll(ctx, 2*time.Minute, "node "+RealNodeName+" to become Ready", p.componentsRunning, func(ctx context.Context) (bool, error) {
		node, err := cs.CoreV1().Nodes().Get(ctx, RealNodeName, metav1.GetOptions{})
		if err != nil {
			return false, err
		}
		return nodeReady(node), fmt.Errorf("node %s not Ready yet", RealNodeName)
	}); err != nil {
		return err
	}
	fmt.Fprintln(n.out, "starting CoreDNS")
	return installCoreDNS(ctx, cs, n.dnsRef, p.componentsRunning)
}

// kubeletConfigYAML: cgroupfs and no cgroup v1 refusal (hosts on v1 exist), no swap refusal,
// authentication by client certificate (the API server's) or token, authorisation by asking
// the API server, no read-only port, and the cluster DNS with no host resolv.conf in pods.
const kubeletConfigYAML = `apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
imageServiceEndpoint: unix://%s
address: %s
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: %s
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS:
- %s
resolvConf: ""
podLogsDir: %s
serializeImagePulls: false
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%%
  imagefs.available: 1%%
  nodefs.inodesFree: 1%%
imageGCHighThresholdPercent: 99
imageGCLowThresholdPercent: 98
`

// kubeProxyConfigYAML: iptables mode; clusterCIDR tells pod traffic from outside traffic;
// conntrack limits are left as the host has them, and nothing listens beyond loopback.
const kubeProxyConfigYAML = `apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection:
  kubeconfig: %s
hostnameOverride: %s
mode: iptables
clusterCIDR: %s
iptables:
  localhostNodePorts: false
conntrack:
  maxPerCore: 0
  min: 0
  tcpEstablishedTimeout: 0s
  tcpCloseWaitTimeout: 0s
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
`

// running reports a node component that has died.
func (n *realNode) running() error {
	for _, pr := range []*process{n.containerd, n.kubelet, n.kubeProxy} {
		if pr != nil {
			if err := pr.running(); err != nil {
				return err
			}
		}
	}
	return nil
}

// drain removes every pod and waits until the kubelet has stopped their containers and torn
// down their networks, so nothing of theirs outlives the node. Controllers must already be
// stopped, or they would make new pods.
func (n *realNode) drain(ctx context.Context, cs kubernetes.Interface) error {
	if n.kubelet == nil || n.kubelet.running() != nil {
		return nil
	}
	pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + RealNodeName})
	if err != nil {
		return err
	}
	for _, pod := range pods.Items {
		_ = cs.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: new(int64(1))})
	}
	return poll(ctx, time.Minute, "the kubelet to stop every pod", nil, func(ctx context.Context) (bool, error) {
		pods, err := cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{FieldSelector: "spec.nodeName=" + RealNodeName})
		if err != nil {
			return false, err
		}
		if len(pods.Items) > 0 {
			return false, fmt.Errorf("%d pod(s) left, e.g. %s/%s", len(pods.Items), pods.Items[0].Namespace, pods.Items[0].Name)
		}
		out, err := exec.CommandContext(ctx, n.tools["ctr"], "--address", n.sock(), "-n", "k8s.io", "tasks", "ls").Output()
		if err != nil {
			return false, err
		}
		if running := strings.Count(string(out), "RUNNING"); running > 0 {
			return false, fmt.Errorf("%d container(s) still running", running)
		}
		return true, nil
	})
}

// stop ends the node's processes: kube-proxy (and its rules), the kubelet, containerd and
// whatever shims and containers are left.
func (n *realNode) stop() error {
	var errs []error
	if n.kubeProxy != nil {
		if err := n.kubeProxy.stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
		cmd := exec.Command(n.tools["kube-proxy"], "--cleanup")
		cmd.Env = n.nodeEnv()
		if out, err := cmd.CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("kube-proxy --cleanup: %w\n%s", err, out))
		}
	}
	for _, pr := range []*process{n.kubelet, n.containerd} {
		if pr != nil {
			if err := pr.stop(15 * time.Second); err != nil {
				errs = append(errs, err)
			}
		}
	}
	n.kubeProxy, n.kubelet, n.containerd = nil, nil, nil
	if n.registry != nil {
		if err := n.registry.stop(); err != nil {
			errs = append(errs, err)
		}
		n.registry = nil
	}
	return errors.Join(errs...)
}

// finish cleans the machine after the control plane has stopped too, restores the sysctls the
// node changed and lets the next real node start.
func (n *realNode) finish() error {
	err := errors.Join(n.cleanHost()...)
	for p, v := range n.sysctls {
		if werr := os.WriteFile(p, []byte(v), 0o644); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	n.sysctls = nil
	// Checked while the lock is held: once it is released the next real node may start and
	// make the same bridge, chains and cgroups.
	if left := NodeLeftovers(n.dir); len(left) > 0 {
		err = errors.Join(err, fmt.Errorf("the real node left behind:\n  %s", strings.Join(left, "\n  ")))
	}
	return errors.Join(err, n.releaseLock())
}

// releaseLock lets the next real node on this machine start.
func (n *realNode) releaseLock() error {
	if n.lock == nil {
		return nil
	}
	err := syscall.Flock(int(n.lock.Fd()), syscall.LOCK_UN)
	n.lock.Close()
	n.lock = nil
	return err
}

// nodeIP is the machine's address on its default route: the API server listens there (pods
// reach it through the kubernetes Service) and the kubelet serves there.
func nodeIP() (net.IP, error) {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil, err
	}
	var dev string
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) > 2 && f[1] == "00000000" {
			dev = f[0]
			break
		}
	}
	if dev == "" {
		return nil, errors.New("no default route")
	}
	iface, err := net.InterfaceByName(dev)
	if err != nil {
		return nil, err
	}
	addrs, err := iface.Addrs()
	if err != nil {
		return nil, err
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil && !ipn.IP.IsLoopback() {
			return ipn.IP.To4(), nil
		}
	}
	return nil, fmt.Errorf("no IPv4 address on %s, the interface of the default route", dev)
}

// prepareNode readies the machine for a real node before the API server starts, and points
// the API server at the node's certificates: a serving certificate pods can verify at
// kubernetes.default.svc, a service-account key the controller manager shares, the
// ServiceAccount admission plugin back on, and a client certificate for the kubelet.
func (p *Plane) prepareNode(ctx context.Context, o Options, api *envtest.APIServer) error {
	ip, err := nodeIP()
	if err != nil {
		return fmt.Errorf("finding this machine's address for the real node: %w", err)
	}
	n := &realNode{dir: filepath.Join(p.Dir, "node"), ip: ip, tools: o.Tools, out: p.out}
	p.node = n
	registryDir, imageCache := o.RegistryDir, o.ImageCacheDir
	if registryDir == "" {
		registryDir = filepath.Join(p.Dir, "registry")
	}
	if imageCache == "" {
		imageCache = DefaultImageCacheDir()
	}
	if err := n.prepare(ctx, registryDir, imageCache); err != nil {
		return err
	}
	certDir := n.path("pki")
	if n.pki, err = writeNodePKI(certDir, ip); err != nil {
		return err
	}
	// Pods reach the API server through the kubernetes Service, which forwards to the
	// advertised address: loopback would be the pod's own, so it listens on the node's.
	port := o.APIServerPort
	if port == 0 {
		if port, err = freePortOn(ip); err != nil {
			return err
		}
	}
	api.CertDir = certDir
	api.SecureServing.CA = n.pki.CA
	api.SecureServing.ListenAddr = envtest.ListenAddr{Address: ip.String(), Port: strconv.Itoa(port)}
	cfg := api.Configure()
	cfg.Disable("disable-admission-plugins")
	cfg.Set("advertise-address", ip.String())
	cfg.Set("service-account-issuer", "https://kubernetes.default.svc.cluster.local")
	cfg.Set("kubelet-client-certificate", n.pki.KubeletClientCert)
	cfg.Set("kubelet-client-key", n.pki.KubeletClientKey)
	return nil
}

func freePortOn(ip net.IP) (int, error) {
	l, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// stopNode stops the controllers (so no pod is replaced), drains the node and stops its
// processes; the control plane stops after it, and finish cleans the machine.
func (p *Plane) stopNode() error {
	for _, pr := range p.procs {
		if pr.name == "kube-controller-manager" || pr.name == "kube-scheduler" {
			_ = pr.stop(15 * time.Second)
		}
	}
	var errs []error
	if p.Config != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
		defer cancel()
		cs, err := kubernetes.NewForConfig(p.Config)
		if err == nil {
			err = p.node.drain(ctx, cs)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("draining node %s: %w", RealNodeName, err))
		}
	}
	return errors.Join(append(errs, p.node.stop())...)
}

// Registry is the local registry's address (127.0.0.1:PORT), where LocalRegistryName points;
// empty without a real node.
func (p *Plane) Registry() string {
	if p.node == nil || p.node.registry == nil {
		return ""
	}
	return p.node.registry.addr
}
