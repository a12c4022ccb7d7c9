// Package chaos runs the real kiln-manager binary, as a cluster does, with its own
// ServiceAccount, and takes things away from under it: the manager process, the leader, the
// API server. Its plane is its own, since these tests start and kill managers of their own.
package chaos

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/test/framework"
)

// pools hold CPU nodes only: these tests count objects and states, not GPUs.
const pools = "cpu=6x0"

var (
	plane *controlplane.Plane
	// managerBin is cmd/kiln-manager, built for this run.
	managerBin string
	// managerKubeconfig holds the manager ServiceAccount's token.
	managerKubeconfig string
)

func TestMain(m *testing.M) {
	// The test's own clients log nothing worth keeping; the managers log to files.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(framework.Main(func() int {
		dir, err := os.MkdirTemp("", "kiln-chaos-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		if err := setUp(dir); err != nil {
			fmt.Fprintln(os.Stderr, "chaos:", err)
			return 1
		}
		return m.Run()
	}, pools, 2*time.Second, &plane))
}

func setUp(dir string) error {
	managerBin = filepath.Join(dir, "kiln-manager")
	build := exec.Command("go", "build", "-o", managerBin, "./cmd/kiln-manager")
	build.Dir = framework.RepoRoot()
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("building kiln-manager: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cfg, err := framework.ManagerConfig(ctx, plane.Config)
	if err != nil {
		return err
	}
	managerKubeconfig = filepath.Join(dir, "kiln-manager.kubeconfig")
	return writeKubeconfig(cfg, managerKubeconfig)
}

func writeKubeconfig(cfg *rest.Config, path string) error {
	kc := clientcmdapi.NewConfig()
	kc.Clusters["kiln"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["kiln-manager"] = &clientcmdapi.AuthInfo{Token: cfg.BearerToken}
	kc.Contexts["kiln"] = &clientcmdapi.Context{Cluster: "kiln", AuthInfo: "kiln-manager"}
	kc.CurrentContext = "kiln"
	return clientcmd.WriteToFile(*kc, path)
}

// managerProcess is one kiln-manager process; its log stays in the plane's folder.
type managerProcess struct {
	name string
	cmd  *exec.Cmd
	log  string
	done chan struct{}
}

// startManager runs kiln-manager with extra flags; the test's end kills it.
func startManager(t *testing.T, name string, flags ...string) *managerProcess {
	t.Helper()
	log := filepath.Join(plane.Dir, fmt.Sprintf("kiln-manager-%s-%d.log", name, time.Now().UnixNano()))
	f, err := os.Create(log)
	if err != nil {
		t.Fatal(err)
	}
	// The webhooks are off: every replica here shares one host and could not bind their
	// port, and their own failures are tested in test/integration/webhook.
	args := append([]string{
		"--metrics-bind-address=0", "--health-probe-bind-address=0", "--webhooks=false",
		"--leader-election-namespace=" + framework.ManagerNamespace,
	}, flags...)
	cmd := exec.Command(managerBin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+managerKubeconfig)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	m := &managerProcess{name: name, cmd: cmd, log: log, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); f.Close(); close(m.done) }()
	t.Cleanup(func() { m.stop(syscall.SIGKILL) })
	return m
}

// stop signals the process and waits for it to end.
func (m *managerProcess) stop(sig syscall.Signal) {
	select {
	case <-m.done:
		return
	default:
	}
	_ = m.cmd.Process.Signal(sig)
	<-m.done
}

// logged says whether the process's log has a line containing s.
func (m *managerProcess) logged(s string) bool {
	f, err := os.Open(m.log)
	if err != nil {
		return false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 0, 64*1024), 1<<20)
	for sc.Scan() {
		if strings.Contains(sc.Text(), s) {
			return true
		}
	}
	return false
}

func kilnClient(t *testing.T) client.Client {
	t.Helper()
	scheme, err := manager.Scheme()
	if err != nil {
		t.Fatal(err)
	}
	c, err := client.New(plane.Config, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
