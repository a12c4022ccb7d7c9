package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
	"k8s.io/client-go/tools/clientcmd"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	crwebhook "sigs.k8s.io/controller-runtime/pkg/webhook"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
	"kiln.dev/kiln/internal/webhook"
	"kiln.dev/kiln/test/framework"
)

// The webhook server runs as a process of its own, as kiln-manager does in a cluster: sharing
// a Go runtime with the creating client's hundreds of goroutines, its handlers' times would
// include waits for the client's scheduling and garbage collection, and its CPU could not be
// told from the client's. The benchmark starts itself with -serve for it.

// served is what the server reports between rounds: the handler calls and the TLS handshakes
// since the last report.
type served struct {
	Calls      map[string][]call
	Handshakes int64
}

// call is one handler call's wall time and the CPU time of its thread.
type call struct{ Wall, CPU time.Duration }

// serve runs the webhook server, as Setup builds it, with each handler timed, and answers
// GET /take on a loopback address it prints first on stdout.
func serve(ctx context.Context, s serveConfig) error {
	cfg, err := clientcmd.BuildConfigFromFlags("", s.kubeconfig)
	if err != nil {
		return err
	}
	wh := webhook.Options{Enabled: true, Host: s.host, Port: s.port, CertDir: s.certDir}
	scheme, err := manager.Scheme()
	if err != nil {
		return err
	}
	mgr, err := ctrl.NewManager(cfg, ctrl.Options{Scheme: scheme, Metrics: metricsserver.Options{BindAddress: "0"}})
	if err != nil {
		return err
	}
	// The API server keeps at most 25 idle connections per webhook host, so at higher
	// concurrency it opens new ones: each is a TLS handshake, counted here.
	var handshakes atomic.Int64
	countHandshakes := func(c *tls.Config) {
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { handshakes.Add(1); return nil, nil }
	}
	server := crwebhook.NewServer(crwebhook.Options{Host: wh.Host, Port: wh.Port, CertDir: wh.CertDir, TLSOpts: []func(*tls.Config){webhook.HTTP1Only, countHandshakes}})
	if err := webhook.WarmCaches(ctx, mgr.GetCache()); err != nil {
		return err
	}
	handlers, err := webhook.Handlers(scheme, webhook.Cluster{Cached: mgr.GetClient(), Live: mgr.GetAPIReader()}, wh)
	if err != nil {
		return err
	}
	tm := &timings{by: map[string][]call{}}
	for path, h := range handlers {
		server.Register(path, tm.wrap(path, h))
	}
	if err := mgr.Add(server); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	control := http.NewServeMux()
	control.HandleFunc("GET /take", func(w http.ResponseWriter, _ *http.Request) {
		_ = json.NewEncoder(w).Encode(served{Calls: tm.take(), Handshakes: handshakes.Swap(0)})
	})
	go func() { _ = http.Serve(ln, control) }() //nolint:gosec // loopback, for the benchmark alone
	fmt.Println(ln.Addr())
	return mgr.Start(ctx)
}

// serveConfig is the -serve process's flags: the plane's kubeconfig and the address and
// certificate the plane's webhook configurations expect.
type serveConfig struct {
	kubeconfig, host, certDir string
	port                      int
}

// webhookServer is the running -serve process.
type webhookServer struct {
	cmd     *exec.Cmd
	control string
}

// startServer starts the webhook server process for plane and waits until it serves.
func startServer(plane *controlplane.Plane, dir string) (*webhookServer, error) {
	kubeconfig, err := plane.AddUser("kiln-webhook", "system:masters")
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "webhook.kubeconfig")
	if err := os.WriteFile(path, kubeconfig, 0o600); err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	wh := framework.WebhookOptions(plane)
	cmd := exec.Command(self, "-serve", path, "-serve-host", wh.Host, "-serve-port", strconv.Itoa(wh.Port), "-serve-certs", wh.CertDir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &webhookServer{cmd: cmd}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		s.stop()
		return nil, fmt.Errorf("webhook server: %w", err)
	}
	s.control = strings.TrimSpace(line)
	if err := framework.WaitForWebhooks(plane, time.Minute); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

func (s *webhookServer) pid() int { return s.cmd.Process.Pid }

// take returns the calls and handshakes since the last take.
func (s *webhookServer) take() (served, error) {
	var r served
	resp, err := http.Get("http://" + s.control + "/take")
	if err != nil {
		return r, err
	}
	defer resp.Body.Close()
	return r, json.NewDecoder(resp.Body).Decode(&r)
}

func (s *webhookServer) stop() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// timings records each handler call by path.
type timings struct {
	mu sync.Mutex
	by map[string][]call
}

// wrap times the handler alone: the request body is read before and the response written
// after, so network transfer from and to the API server is not counted. The handler runs
// on a thread of its own for the while, so that thread's CPU time is the handler's: the
// wall time less that is time spent waiting for a CPU.
func (t *timings) wrap(path string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		rec := httptest.NewRecorder()
		runtime.LockOSThread()
		start, cpu := time.Now(), threadCPU()
		h.ServeHTTP(rec, r)
		c := call{Wall: time.Since(start), CPU: threadCPU() - cpu}
		runtime.UnlockOSThread()
		maps.Copy(w.Header(), rec.Header())
		w.WriteHeader(rec.Code)
		_, _ = w.Write(rec.Body.Bytes())
		t.mu.Lock()
		t.by[path] = append(t.by[path], c)
		t.mu.Unlock()
	})
}

func threadCPU() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_THREAD_CPUTIME_ID, &ts); err != nil {
		return 0
	}
	return time.Duration(ts.Nano())
}

func (t *timings) take() map[string][]call {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := t.by
	t.by = map[string][]call{}
	return out
}
