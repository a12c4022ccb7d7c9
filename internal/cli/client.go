package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strings"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/internal/manager"
)

// cluster turns the kubeconfig flags into clients, the same way kubectl does.
type cluster struct {
	flags *genericclioptions.ConfigFlags
	// warnings receives the API server's warnings (admission's advice among them),
	// one "Warning: ..." line each, as kubectl prints them; nil drops them.
	warnings io.Writer
}

func (c cluster) restConfig() (*rest.Config, error) {
	cfg, err := c.flags.ToRESTConfig()
	if err != nil {
		return nil, fmt.Errorf("no cluster configured (%v): pass --kubeconfig/--context, or start a local Kiln with `kubectl kiln dev up`", err)
	}
	// A CLI makes a handful of calls; kubectl's defaults keep it polite to the API server.
	cfg.QPS, cfg.Burst = 50, 100
	cfg.WarningHandler = rest.NoWarnings{}
	if c.warnings != nil {
		cfg.WarningHandler = rest.NewWarningWriter(c.warnings, rest.WarningWriterOptions{Deduplicate: true})
	}
	return cfg, nil
}

// namespace is -n, or the kubeconfig context's namespace, or "default".
func (c cluster) namespace() (string, error) {
	if c.flags.Namespace != nil && *c.flags.Namespace != "" {
		return *c.flags.Namespace, nil
	}
	ns, _, err := c.flags.ToRawKubeConfigLoader().Namespace()
	if err != nil {
		return "", fmt.Errorf("reading the namespace from the kubeconfig: %w", err)
	}
	return ns, nil
}

func (c cluster) client() (client.Client, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	scheme, err := manager.Scheme()
	if err != nil {
		return nil, err
	}
	return client.New(cfg, client.Options{Scheme: scheme})
}

// clientIn is the client and the namespace a namespaced verb works in.
func (c cluster) clientIn() (client.Client, string, error) {
	cl, err := c.client()
	if err != nil {
		return nil, "", err
	}
	ns, err := c.namespace()
	return cl, ns, err
}

func (c cluster) clientset() (*kubernetes.Clientset, error) {
	cfg, err := c.restConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(cfg)
}

// explain turns the errors users meet most into one line that says what to do.
func explain(err error) error {
	if err == nil {
		return nil
	}
	var netErr net.Error
	var urlErr *url.Error
	switch {
	case errors.As(err, &urlErr) || errors.As(err, &netErr) || strings.Contains(err.Error(), "connection refused"):
		return fmt.Errorf("cannot reach the cluster (%v): check --kubeconfig/--context, or start a local Kiln with `kubectl kiln dev up`", rootCause(err))
	case meta.IsNoMatchError(err) || strings.Contains(err.Error(), "no matches for kind"):
		return errors.New("Kiln is not installed on this cluster (no kiln.dev kinds): install it with `kubectl apply -k config/default`")
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("the cluster did not answer in time: %w", err)
	}
	return err
}

func rootCause(err error) error {
	for {
		next := errors.Unwrap(err)
		if next == nil {
			return err
		}
		err = next
	}
}
