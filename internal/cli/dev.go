package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/internal/controlplane"
	"kiln.dev/kiln/internal/devtools"
	"kiln.dev/kiln/internal/localkiln"
)

func newDevCommand(streams genericiooptions.IOStreams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run Kiln locally on a real control plane with a real node and simulated GPU nodes",
		Long: `A local Kiln: kube-apiserver, etcd, kube-controller-manager and kube-scheduler built from their
Go modules, a real node (containerd, kubelet, kube-proxy, CoreDNS and a local image registry at
kiln.local) where the machine allows it, kwok simulating pools of GPU nodes, Kiln's CRDs and its
manager. Nothing is downloaded but Go modules and Debian packages; the first run builds the
components (about 15 minutes on 2 cores) and caches them.`,
	}
	cmd.AddCommand(newDevUpCommand(streams), newDevDownCommand(streams), newDevStatusCommand(streams),
		newDevToolsCommand(streams), newDevExamplesCommand(streams), newDevServeCommand(streams),
		newDevImagesCommand(streams))
	return cmd
}

// DevUpOptions start the local Kiln.
type DevUpOptions struct {
	Pools    string
	Port     int
	StateDir string
	Timeout  time.Duration
	// RealNode asks for a real node; it is used when the machine allows it (DetectRealNode).
	RealNode bool

	poolsChanged bool
	pools        []controlplane.NodePool
	probes       controlplane.Probes
	streams      genericiooptions.IOStreams
}

func newDevUpCommand(streams genericiooptions.IOStreams) *cobra.Command {
	o := &DevUpOptions{streams: streams}
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start the local Kiln in the background (safe to run twice)",
		Example: `  # The default cluster: a real node where the machine allows it (a simulated CPU node
  # otherwise), two simulated 8-GPU nodes and two 4-GPU nodes
  kubectl kiln dev up

  # Simulated nodes only, even where a real node could run
  kubectl kiln dev up --real-node=false

  # Four 8-GPU A100 nodes and eight 4-GPU L4 nodes, API server on port 6443
  kubectl kiln dev up --pools a100=4x8,l4=8x4@NVIDIA-L4 --port 6443`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			o.poolsChanged = cmd.Flags().Changed("pools")
			if err := o.Complete(); err != nil {
				return err
			}
			if err := o.Validate(); err != nil {
				return err
			}
			return o.Run(cmd.Context())
		},
	}
	addDevFlags(cmd, &o.Pools, &o.Port, &o.StateDir)
	cmd.Flags().DurationVar(&o.Timeout, "timeout", 5*time.Minute, "how long to wait for the plane once its components are built")
	cmd.Flags().BoolVar(&o.RealNode, "real-node", true, "run a real node for CPU work where the machine allows it (root, cgroups, namespaces, overlayfs, iptables); false uses simulated nodes only")
	return cmd
}

func addDevFlags(cmd *cobra.Command, pools *string, port *int, dir *string) {
	cmd.Flags().StringVar(pools, "pools", controlplane.DefaultPools,
		"simulated node pools, comma-separated [NAME=]COUNTxGPUS[@PRODUCT]; 0 GPUs makes CPU nodes")
	cmd.Flags().IntVar(port, "port", 0, "API server port on 127.0.0.1 (0 picks a free one)")
	cmd.Flags().StringVar(dir, "state-dir", localkiln.DefaultDir(), "folder for the kubeconfig, state and logs")
}

// Complete parses the pool list.
func (o *DevUpOptions) Complete() error {
	if o.probes.EUID == nil {
		o.probes = controlplane.HostProbes()
	}
	pools, err := controlplane.ParsePools(o.Pools)
	if err != nil {
		return err
	}
	o.pools = pools
	return nil
}

// Validate refuses a port outside the TCP range.
func (o *DevUpOptions) Validate() error {
	if o.Port < 0 || o.Port > 65535 {
		return fmt.Errorf("--port %d is not a TCP port (0-65535)", o.Port)
	}
	if o.Port != 0 {
		if err := controlplane.CheckPortFree(o.Port); err != nil {
			return err
		}
	}
	if o.Timeout <= 0 {
		return fmt.Errorf("--timeout must be positive")
	}
	return nil
}

// Run builds the tools if needed, starts the supervisor and reports what runs.
func (o *DevUpOptions) Run(ctx context.Context) error {
	out := o.streams.Out
	if s, err := localkiln.ReadState(o.StateDir); err != nil {
		return err
	} else if s != nil && s.Server != "" {
		fmt.Fprintf(out, "Kiln is already running (since %s).\n", s.Started.Local().Format(time.Kitchen))
		printSummary(o.streams, s)
		return nil
	} else if s != nil {
		return fmt.Errorf("a local Kiln is starting (pid %d); wait for it or run `kubectl kiln dev down`", s.PID)
	}
	realNode := o.decideRealNode()
	if !o.poolsChanged && realNode {
		// The real node takes the CPU work the simulated cpu pool would have had.
		o.Pools = controlplane.DefaultPoolsWithRealNode
	}
	if _, err := ensureTools(ctx, o.streams, realNode); err != nil {
		return err
	}
	args := []string{"--pools", o.Pools, "--port", fmt.Sprint(o.Port), "--real-node=" + fmt.Sprint(realNode)}
	sup, err := localkiln.StartSupervisor(o.StateDir, args)
	if err != nil {
		return err
	}
	s, err := sup.WaitReady(ctx, o.StateDir, o.Timeout, prefixWriter{w: o.streams.ErrOut, prefix: "  "})
	if err != nil {
		return err
	}
	fmt.Fprintln(out, "Kiln is running.")
	printSummary(o.streams, s)
	return nil
}

// decideRealNode says whether to run a real node, and when one was wanted but the machine
// cannot run it, says why in one line.
func (o *DevUpOptions) decideRealNode() bool {
	if !o.RealNode {
		return false
	}
	if reason := controlplane.DetectRealNode(o.probes); reason != "" {
		fmt.Fprintf(o.streams.ErrOut, "No real node: %s; simulated nodes are used instead.\n", reason)
		return false
	}
	return true
}

func printSummary(streams genericiooptions.IOStreams, s *localkiln.State) {
	if s.Registry != "" {
		fmt.Fprintf(streams.Out, "  real node:   %s (images: %s/NAME:TAG, served at %s)\n", controlplane.RealNodeName, controlplane.LocalRegistryName, s.Registry)
	} else {
		fmt.Fprintln(streams.Out, "  real node:   none (simulated nodes only)")
	}
	fmt.Fprintf(streams.Out, `  API server:  %s
  node pools:  %s
  kubeconfig:  %s
  logs:        %s

Try:
  export KUBECONFIG=%s
  kubectl get nodes -L kiln.dev/pool,nvidia.com/gpu.product,nvidia.com/gpu.count
Stop it with:
  kubectl kiln dev down
`, s.Server, s.Pools, s.KubeConfig, s.LogDir, s.KubeConfig)
}

func sourceDir() (string, error) {
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	return devtools.FindSourceDir(wd)
}

// crdDir holds the CRDs of the checkout the local Kiln runs from, so its API matches its manager.
func crdDir() (string, error) {
	src, err := sourceDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(src, "..", "..", "config", "crd", "bases"), nil
}

func ensureTools(ctx context.Context, streams genericiooptions.IOStreams, realNode bool) (map[string]string, error) {
	src, err := sourceDir()
	if err != nil {
		return nil, err
	}
	c := &devtools.Cache{SourceDir: src, Out: prefixWriter{w: streams.ErrOut, prefix: "  "}}
	names := devtools.ControlPlaneTools
	if realNode {
		names = append(append([]string{}, names...), devtools.NodeTools...)
	}
	return c.Ensure(ctx, names...)
}

func newDevDownCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Stop the local Kiln and every process it started",
		Long: `Stop the local Kiln: the manager, kwok, the scheduler, the controller manager, the API server and
etcd. Whatever is left of its process session is killed, and down checks that none of its ports
still listens. Its kubeconfig and logs stay in the state folder until the next up.`,
		Example: `  kubectl kiln dev down`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := localkiln.ReadState(dir)
			if err != nil {
				return err
			}
			if s == nil {
				fmt.Fprintln(streams.Out, "Kiln is not running.")
				return nil
			}
			if err := localkiln.Stop(dir, time.Minute); err != nil {
				return err
			}
			fmt.Fprintln(streams.Out, "Kiln stopped; no process or port is left behind.")
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "state-dir", localkiln.DefaultDir(), "folder for the kubeconfig, state and logs")
	return cmd
}

func newDevStatusCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:     "status",
		Short:   "Say whether the local Kiln runs, and where",
		Example: `  kubectl kiln dev status`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			s, err := localkiln.ReadState(dir)
			if err != nil {
				return err
			}
			switch {
			case s == nil:
				fmt.Fprintln(streams.Out, "Kiln is not running. Start it with: kubectl kiln dev up")
			case s.Server == "":
				fmt.Fprintf(streams.Out, "Kiln is starting (pid %d).\n", s.PID)
			default:
				fmt.Fprintf(streams.Out, "Kiln is running (pid %d, since %s).\n", s.PID, s.Started.Local().Format(time.RFC3339))
				printSummary(streams, s)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "state-dir", localkiln.DefaultDir(), "folder for the kubeconfig, state and logs")
	return cmd
}

func newDevToolsCommand(streams genericiooptions.IOStreams) *cobra.Command {
	return &cobra.Command{
		Use:   "tools [NAME...]",
		Short: "Build (or find in the cache) the Kubernetes components and print their paths",
		Example: `  # Build everything the local Kiln and the tests need, e.g. before going offline
  kubectl kiln dev tools`,
		RunE: func(cmd *cobra.Command, args []string) error {
			names := args
			if len(names) == 0 {
				names = append(append(append([]string{}, devtools.ControlPlaneTools...), devtools.NodeTools...), "controller-gen", "helm")
			}
			src, err := sourceDir()
			if err != nil {
				return err
			}
			paths, err := (&devtools.Cache{SourceDir: src, Out: streams.ErrOut}).Ensure(cmd.Context(), names...)
			if err != nil {
				return err
			}
			for _, n := range names {
				fmt.Fprintf(streams.Out, "%s\t%s\n", n, paths[n])
			}
			return nil
		},
	}
}

func newDevServeCommand(streams genericiooptions.IOStreams) *cobra.Command {
	var pools, dir string
	var port int
	var realNode bool
	cmd := &cobra.Command{
		Use:    "serve",
		Short:  "Run the local Kiln in the foreground (what `dev up` starts in the background)",
		Hidden: true,
		Args:   cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ps, err := controlplane.ParsePools(pools)
			if err != nil {
				return err
			}
			ctx, stop := signal.NotifyContext(cmd.Context(), syscall.SIGTERM, os.Interrupt)
			defer stop()
			tools, err := ensureTools(ctx, streams, realNode)
			if err != nil {
				return err
			}
			crds, err := crdDir()
			if err != nil {
				return err
			}
			src, err := sourceDir()
			if err != nil {
				return err
			}
			return localkiln.Serve(ctx, localkiln.ServeOptions{
				Dir: dir, Tools: tools, Pools: ps, Port: port, CRDPaths: []string{crds}, RealNode: realNode,
				Source: filepath.Dir(filepath.Dir(src)), // src is the checkout's hack/tools
			}, streams.Out)
		},
	}
	addDevFlags(cmd, &pools, &port, &dir)
	cmd.Flags().BoolVar(&realNode, "real-node", false, "run a real node beside the simulated pools")
	return cmd
}

// prefixWriter indents progress relayed from a build or the supervisor.
type prefixWriter struct {
	w      io.Writer
	prefix string
}

func (p prefixWriter) Write(b []byte) (int, error) {
	s := strings.TrimRight(string(b), "\n")
	for _, l := range strings.Split(s, "\n") {
		if _, err := fmt.Fprintln(p.w, p.prefix+l); err != nil {
			return 0, err
		}
	}
	return len(b), nil
}
