package localkiln

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/manager"
)

// ServeOptions configure the supervisor.
type ServeOptions struct {
	Dir      string
	Tools    map[string]string
	Pools    []controlplane.NodePool
	Port     int
	CRDPaths []string
	// RealNode runs a real node beside the pools; its registry keeps blobs in Dir/registry.
	RealNode bool
	// Source is the Kiln checkout, from which the real node's kiln-fetch image is built.
	Source string
}

// Serve runs the local Kiln until ctx ends or a component dies, then stops everything. Progress
// goes to out; component and manager logs go to files under Dir/logs.
func Serve(ctx context.Context, o ServeOptions, out io.Writer) (err error) {
	logDir := filepath.Join(o.Dir, "logs")
	// A real node that was killed may have left containers and mounts under its folder.
	if err := controlplane.ReleaseDir(logDir); err != nil {
		return err
	}
	if err := os.RemoveAll(logDir); err != nil {
		return err
	}
	plane, err := controlplane.Start(ctx, controlplane.Options{
		Tools: o.Tools, Dir: logDir, APIServerPort: o.Port, Pools: o.Pools, CRDPaths: o.CRDPaths, Out: out,
		RealNode: o.RealNode, RegistryDir: filepath.Join(o.Dir, "registry"),
	})
	if err != nil {
		return err
	}
	defer func() {
		fmt.Fprintln(out, "stopping the control plane")
		if stopErr := plane.Stop(); stopErr != nil && err == nil {
			err = stopErr
		}
		cleanup(o.Dir)
	}()
	kubeconfig := filepath.Join(o.Dir, kubeconfigFile)
	if err := os.WriteFile(kubeconfig, plane.KubeConfig, 0o600); err != nil {
		return err
	}

	mgrLog, err := os.Create(filepath.Join(logDir, "kiln-manager.log"))
	if err != nil {
		return err
	}
	defer mgrLog.Close()
	logger := zap.New(zap.WriteTo(mgrLog))
	ctrl.SetLogger(logger)
	var fetchImage string
	if o.RealNode {
		fmt.Fprintln(out, "building the kiln-fetch image (downloads of s3://, gs:// and https:// data)")
		if fetchImage, err = BuildFetchImage(ctx, o.Source, plane.Registry(), io.Discard); err != nil {
			return err
		}
	}
	// Kiln's own namespace holds the key its notebook and trial tokens are derived from, as
	// in an install (config/default creates it).
	cs, err := kubernetes.NewForConfig(plane.Config)
	if err != nil {
		return err
	}
	_, err = cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "kiln-system"}}, metav1.CreateOptions{})
	if err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace kiln-system: %w", err)
	}
	mgr, err := manager.New(plane.Config, manager.Options{MetricsAddr: "0", ProbeAddr: "0", FetchImage: fetchImage})
	if err != nil {
		return err
	}
	mgrCtx, stopMgr := context.WithCancel(logr.NewContext(ctx, logger))
	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Start(mgrCtx) }()
	defer func() { stopMgr(); _ = <-mgrDone }()
	fmt.Fprintln(out, "starting kiln-manager")

	var pools []string
	for _, p := range o.Pools {
		pools = append(pools, p.String())
	}
	state := State{
		PID: os.Getpid(), Server: plane.Server(), KubeConfig: kubeconfig, Pools: strings.Join(pools, ","),
		Listening: plane.Listening(), LogDir: logDir, Started: time.Now().UTC().Truncate(time.Second),
		Registry: plane.Registry(),
	}
	b, _ := json.MarshalIndent(state, "", "  ")
	if err := os.WriteFile(filepath.Join(o.Dir, stateFile), b, 0o600); err != nil {
		return err
	}
	fmt.Fprintln(out, "ready")

	tick := time.NewTicker(2 * time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case err := <-mgrDone:
			mgrDone <- err // for the deferred wait
			return fmt.Errorf("kiln-manager stopped: %v (log: %s)", err, mgrLog.Name())
		case <-tick.C:
			if err := plane.Healthy(); err != nil {
				return err
			}
		}
	}
}
