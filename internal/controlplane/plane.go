// Package controlplane runs a real Kubernetes control plane on this machine for tests and for
// the local Kiln: kube-apiserver and etcd (through envtest), and for the full plane also
// kube-controller-manager, kube-scheduler and kwok with pools of simulated GPU nodes.
package controlplane

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

//go:embed kwok-stages.yaml
var kwokStages string

// Options say what to run.
type Options struct {
	// Tools maps binary names (etcd, kube-apiserver, …) to paths; see devtools.Cache.
	Tools map[string]string
	// Dir keeps certificates, configuration and component logs; a temporary folder when empty.
	Dir string
	// APIServerPort is the API server's port on 127.0.0.1; 0 picks a free one.
	APIServerPort int
	// Pools of simulated nodes. With none, only the API server and etcd run.
	Pools []NodePool
	// PodRunTime is how long a Job's pod on a simulated node runs before it succeeds (default 2s).
	PodRunTime time.Duration
	// CRDPaths are files or folders of CustomResourceDefinitions to install once the API is up.
	CRDPaths []string
	// APIServerFlags are extra kube-apiserver flags (name without dashes → value), e.g. an
	// audit log for a benchmark.
	APIServerFlags map[string]string
	// Out receives progress lines; nil discards them.
	Out io.Writer
	// Webhooks, when set, installs these webhook configurations once the API is up, pointed at
	// a local serving address and certificate (see Plane.Webhooks for where to serve them).
	Webhooks *envtest.WebhookInstallOptions
	// RealNode adds a real node beside the simulated pools: containerd, kubelet, kube-proxy and
	// CoreDNS on this machine, with a local registry for images (see DetectRealNode). It needs
	// root and the NodeTools; one real node runs per machine at a time, others wait.
	RealNode bool
	// RegistryDir keeps the local registry's blobs; Dir/registry when empty.
	RegistryDir string
	// ImageCacheDir keeps the node's built images; DefaultImageCacheDir() when empty.
	ImageCacheDir string
}

// Plane is a running control plane.
type Plane struct {
	// Config reaches the API server as a cluster administrator.
	Config *rest.Config
	// KubeConfig is Config as a kubeconfig file's content.
	KubeConfig []byte
	// KubeConfigPath is where KubeConfig was written.
	KubeConfigPath string
	// Dir holds the component logs.
	Dir string

	env      *envtest.Environment
	procs    []*process
	ownedDir bool
	out      io.Writer
	kwokAddr string
	stop     context.CancelFunc // ends the plane's own loops (the storage provisioner)
	loops    chan struct{}
	// restartedAPIServer is the API server RestartAPIServer started in place of envtest's.
	restartedAPIServer *process
	node               *realNode
}

// Start brings the plane up and returns once the API answers and every simulated node is Ready.
func Start(ctx context.Context, o Options) (*Plane, error) {
	out := o.Out
	if out == nil {
		out = io.Discard
	}
	for _, name := range requiredTools(o) {
		if o.Tools[name] == "" {
			return nil, fmt.Errorf("no path for %s (build it with devtools.Cache.Ensure)", name)
		}
	}
	if o.APIServerPort != 0 {
		if err := CheckPortFree(o.APIServerPort); err != nil {
			return nil, err
		}
	}
	p := &Plane{Dir: o.Dir, out: out}
	if p.Dir == "" {
		d, err := os.MkdirTemp("", "kiln-plane-")
		if err != nil {
			return nil, err
		}
		p.Dir, p.ownedDir = d, true
	} else if err := os.MkdirAll(p.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := p.start(ctx, o); err != nil {
		if stopErr := p.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, err
	}
	return p, nil
}

func requiredTools(o Options) []string {
	names := []string{"etcd", "kube-apiserver"}
	if len(o.Pools) > 0 || o.RealNode {
		names = append(names, "kube-controller-manager", "kube-scheduler", "kwok")
	}
	if o.RealNode {
		names = append(names, "kubelet", "kube-proxy", "containerd", "containerd-shim-runc-v2", "ctr", "coredns", "kiln-pause")
	}
	return names
}

func (p *Plane) start(ctx context.Context, o Options) error {
	apiLog, err := os.Create(filepath.Join(p.Dir, "kube-apiserver.log"))
	if err != nil {
		return err
	}
	etcdLog, err := os.Create(filepath.Join(p.Dir, "etcd.log"))
	if err != nil {
		return err
	}
	api := &envtest.APIServer{Path: o.Tools["kube-apiserver"], Out: apiLog, Err: apiLog, StartTimeout: time.Minute}
	if o.APIServerPort != 0 {
		api.ListenAddr = envtest.ListenAddr{Address: "127.0.0.1", Port: strconv.Itoa(o.APIServerPort)}
	}
	// Pod logs and exec go through the node's InternalIP; simulated nodes have no DNS names.
	api.Configure().Set("kubelet-preferred-address-types", "InternalIP,Hostname")
	if o.RealNode {
		if err := p.prepareNode(ctx, o, api); err != nil {
			return err
		}
	}
	for k, v := range o.APIServerFlags {
		api.Configure().Set(k, v)
	}
	p.env = &envtest.Environment{
		ControlPlane: envtest.ControlPlane{
			APIServer: api,
			Etcd:      &envtest.Etcd{Path: o.Tools["etcd"], Out: etcdLog, Err: etcdLog, StartTimeout: time.Minute},
		},
		CRDInstallOptions:       envtest.CRDInstallOptions{Paths: o.CRDPaths, ErrorIfPathMissing: true},
		ControlPlaneStopTimeout: 30 * time.Second,
	}
	if o.Webhooks != nil {
		p.env.WebhookInstallOptions = *o.Webhooks
	}
	fmt.Fprintln(p.out, "starting etcd and kube-apiserver")
	if _, err := p.env.Start(); err != nil {
		return fmt.Errorf("starting API server and etcd (logs in %s): %w", p.Dir, err)
	}
	admin, err := p.env.AddUser(envtest.User{Name: "kiln-admin", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return fmt.Errorf("creating admin user: %w", err)
	}
	p.Config = admin.Config()
	if p.KubeConfig, err = admin.KubeConfig(); err != nil {
		return err
	}
	p.KubeConfigPath = filepath.Join(p.Dir, "admin.kubeconfig")
	if err := os.WriteFile(p.KubeConfigPath, p.KubeConfig, 0o600); err != nil {
		return err
	}
	if len(o.Pools) == 0 && !o.RealNode {
		return nil
	}
	if err := p.startNodes(ctx, o); err != nil {
		return err
	}
	if p.node != nil {
		return p.node.join(ctx, p)
	}
	return nil
}

// componentKubeconfig gives a component its own user, as on a real cluster, so audit logs and
// API server metrics tell its requests from a client's.
func (p *Plane) componentKubeconfig(user string) (string, error) {
	kc, err := p.AddUser(user, "system:masters")
	if err != nil {
		return "", fmt.Errorf("creating a user for %s: %w", user, err)
	}
	path := filepath.Join(p.Dir, strings.TrimPrefix(user, "system:")+".kubeconfig")
	return path, os.WriteFile(path, kc, 0o600)
}

func (p *Plane) startNodes(ctx context.Context, o Options) error {
	fmt.Fprintln(p.out, "starting kube-controller-manager, kube-scheduler and kwok")
	kc, err := p.componentKubeconfig("system:kube-controller-manager")
	if err != nil {
		return err
	}
	args := []string{"--kubeconfig=" + kc, "--authentication-kubeconfig=" + kc, "--authorization-kubeconfig=" + kc,
		"--leader-elect=false", "--secure-port=0",
		// Enough client throughput that the Job controller is not the bottleneck of a benchmark.
		"--kube-api-qps=200", "--kube-api-burst=400", "--concurrent-job-syncs=20"}
	if p.node != nil {
		// Real pods get service-account tokens and the CA to check the API server with.
		args = append(args, "--controllers=*", "--service-account-private-key-file="+p.node.pki.SAKeyFile, "--root-ca-file="+p.node.pki.CAFile)
	} else {
		// Token minting needs the service-account signing key, which envtest keeps to itself.
		args = append(args, "--controllers=*,-serviceaccount-token")
	}
	cm, err := startProcess(p.Dir, "kube-controller-manager", o.Tools["kube-controller-manager"], args...)
	if err != nil {
		return err
	}
	p.procs = append(p.procs, cm)
	if kc, err = p.componentKubeconfig("system:kube-scheduler"); err != nil {
		return err
	}
	sched, err := startProcess(p.Dir, "kube-scheduler", o.Tools["kube-scheduler"],
		"--kubeconfig="+kc, "--authentication-kubeconfig="+kc, "--authorization-kubeconfig="+kc,
		"--leader-elect=false", "--secure-port=0", "--kube-api-qps=200", "--kube-api-burst=400")
	if err != nil {
		return err
	}
	p.procs = append(p.procs, sched)

	runTime := o.PodRunTime
	if runTime == 0 {
		runTime = 2 * time.Second
	}
	// kwok stands in for the kubelet's server too, so `kubectl logs` works on simulated nodes:
	// the API server reaches it at the nodes' address, 127.0.0.1, on a port of its own.
	logsFile := filepath.Join(p.Dir, "simulated-container.log")
	if err := os.WriteFile(logsFile, []byte(simulatedLog), 0o644); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	p.kwokAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	stages := strings.NewReplacer("POD_RUN_TIME_MS", strconv.FormatInt(runTime.Milliseconds(), 10),
		"KUBELET_VERSION", kubeletVersion, "LOGS_FILE", logsFile).Replace(kwokStages)
	stagesPath := filepath.Join(p.Dir, "kwok-stages.yaml")
	if err := os.WriteFile(stagesPath, []byte(stages), 0o644); err != nil {
		return err
	}
	if kc, err = p.componentKubeconfig("kwok"); err != nil {
		return err
	}
	kwok, err := startProcess(p.Dir, "kwok", o.Tools["kwok"],
		"--kubeconfig="+kc, "--config="+stagesPath,
		"--manage-nodes-with-annotation-selector="+kwokNodeAnnotation+"=fake",
		// Outside the API server's service range (10.0.0.0/24), so pod and Service IPs never clash.
		"--cidr=10.244.0.0/16", "--node-lease-duration-seconds=40",
		"--node-ip=127.0.0.1", "--node-port="+strconv.Itoa(port), "--server-address=127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		return err
	}
	p.procs = append(p.procs, kwok)

	cs, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return err
	}
	prov := &provisioner{cs: cs, dir: filepath.Join(p.Dir, "volumes")}
	if err := prov.installClass(ctx); err != nil {
		return err
	}
	loopCtx, stop := context.WithCancel(context.Background())
	p.stop, p.loops = stop, make(chan struct{})
	go func() { defer close(p.loops); prov.run(loopCtx) }()

	if err := p.AddPools(ctx, o.Pools...); err != nil {
		return err
	}
	// The default ServiceAccount appears once the controller manager's controllers run.
	return poll(ctx, 90*time.Second, "kube-controller-manager to create the default ServiceAccount", p.componentsRunning,
		func(ctx context.Context) (bool, error) {
			_, err := cs.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
			return err == nil, err
		})
}

const kubeletVersion = "v1.37.2"

// simulatedLog is what every container on a simulated node logs, in the CRI log format kwok
// reads (time, stream, full-line tag, text): nothing runs there.
const simulatedLog = `2026-01-01T00:00:00.000000000Z stdout F simulated node: no process runs here, so kwok serves this text as the container's log
2026-01-01T00:00:00.000000000Z stdout F on a real node the container's own output appears instead
`

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// AddPools creates the pools' nodes and waits until kwok reports them Ready.
func (p *Plane) AddPools(ctx context.Context, pools ...NodePool) error {
	cs, err := kubernetes.NewForConfig(p.Config)
	if err != nil {
		return err
	}
	var names []string
	for _, pool := range pools {
		for _, n := range pool.Nodes() {
			if _, err := cs.CoreV1().Nodes().Create(ctx, &n, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating node %s: %w", n.Name, err)
			}
			names = append(names, n.Name)
		}
		fmt.Fprintf(p.out, "node pool %s: %d node(s) with %d GPU(s) each\n", pool.Name, pool.Count, pool.GPUs)
	}
	return poll(ctx, 60*time.Second, "simulated nodes to become Ready", p.componentsRunning, func(ctx context.Context) (bool, error) {
		for _, name := range names {
			n, err := cs.CoreV1().Nodes().Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			if !nodeReady(n) {
				return false, fmt.Errorf("node %s not Ready yet", name)
			}
		}
		return true, nil
	})
}

func nodeReady(n *corev1.Node) bool {
	for _, c := range n.Status.Conditions {
		if c.Type == corev1.NodeReady {
			return c.Status == corev1.ConditionTrue
		}
	}
	return false
}

// componentsRunning fails when a component process has died.
func (p *Plane) componentsRunning() error {
	for _, pr := range p.procs {
		if err := pr.running(); err != nil {
			return err
		}
	}
	if p.node != nil {
		return p.node.running()
	}
	return nil
}

// Healthy reports whether every component is still running.
func (p *Plane) Healthy() error { return p.componentsRunning() }

// Stop stops every component and removes the plane's folder if Start created it.
func (p *Plane) Stop() error {
	var errs []error
	if p.stop != nil {
		p.stop()
		<-p.loops
		p.stop = nil
	}
	if p.node != nil {
		errs = append(errs, p.stopNode())
	}
	for i := len(p.procs) - 1; i >= 0; i-- {
		if err := p.procs[i].stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}
	p.procs = nil
	if p.restartedAPIServer != nil {
		if err := p.restartedAPIServer.stop(15 * time.Second); err != nil {
			errs = append(errs, err)
		}
		p.restartedAPIServer = nil
	}
	if p.env != nil {
		if err := p.env.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping API server and etcd: %w", err))
		}
		p.env = nil
	}
	if p.node != nil {
		if err := p.node.finish(); err != nil {
			errs = append(errs, err)
		}
		p.node = nil
	}
	if p.ownedDir {
		// Never remove through a mount: a node's volume could be bind-mounted below.
		if m := mountsUnder(p.Dir); len(m) > 0 {
			errs = append(errs, fmt.Errorf("not removing %s: %s still mounted", p.Dir, strings.Join(m, ", ")))
		} else if err := os.RemoveAll(p.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// KeepDir stops Stop from removing the plane's folder, so logs of a failed test survive.
func (p *Plane) KeepDir() { p.ownedDir = false }

// CheckPortFree fails with a clear message when something listens on port.
func CheckPortFree(port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return fmt.Errorf("port %d is already in use on 127.0.0.1: stop what listens there or choose another port", port)
	}
	return l.Close()
}

// AddUser provisions a client certificate user in the given groups and returns its kubeconfig,
// so a component can run with its own identity (and only the RBAC bound to it).
func (p *Plane) AddUser(name string, groups ...string) ([]byte, error) {
	u, err := p.env.AddUser(envtest.User{Name: name, Groups: groups}, nil)
	if err != nil {
		return nil, err
	}
	return u.KubeConfig()
}

// Listening lists the host:port addresses the plane's servers listen on.
func (p *Plane) Listening() []string {
	cp := p.env.ControlPlane
	addrs := []string{net.JoinHostPort(cp.APIServer.Address, cp.APIServer.Port)}
	if cp.Etcd.URL != nil {
		addrs = append(addrs, cp.Etcd.URL.Host)
	}
	if p.kwokAddr != "" {
		addrs = append(addrs, p.kwokAddr)
	}
	if p.node != nil && p.node.registry != nil {
		addrs = append(addrs, p.node.registry.addr)
	}
	return addrs
}

// Webhooks says where the installed webhook configurations expect the webhooks to be served:
// LocalServingHost, LocalServingPort and the certificate in LocalServingCertDir.
func (p *Plane) Webhooks() envtest.WebhookInstallOptions { return p.env.WebhookInstallOptions }

// Server is the API server's URL.
func (p *Plane) Server() string { return p.Config.Host }
