package manager

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"kiln.dev/kiln/internal/push"
	"kiln.dev/kiln/internal/source"
	"kiln.dev/kiln/internal/webhook"
)

// PushServiceName is the Service in front of the push receiver (config/webhook/push-service.yaml).
const PushServiceName = "kiln-push"

// PushOptions configure push-to-deploy, which is off unless Enabled.
type PushOptions struct {
	// Enabled serves the push receiver on its own port and runs the build Jobs.
	Enabled bool
	// Server is the receiver's server: address, certificate, timeouts, bounds.
	Server push.ServerOptions
	// Build configures the build Jobs.
	Build push.Options
	// AllowedHosts are repository hosts exempt from the address checks;
	// DeniedCIDRs the ranges a repository host may not resolve into (default
	// source.DefaultDeniedCIDRs), beyond loopback, link-local and unspecified.
	AllowedHosts, DeniedCIDRs []string
	// MaxBody bounds an event's body (default push.DefaultMaxBody).
	MaxBody int64
}

// addPush adds the build workers, the repository index and the receiver's own
// server to mgr. Without a certificate directory of its own, the server uses the
// webhooks' (cert-manager's) or, when Kiln issues that, the same certificate,
// which then names the push Service too.
func addPush(mgr ctrl.Manager, o PushOptions, wh *webhook.Options, namespace string) error {
	if err := push.IndexFields(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return err
	}
	denied := o.DeniedCIDRs
	if denied == nil {
		denied = source.DefaultDeniedCIDRs
	}
	cidrs, err := source.ParseCIDRs(denied)
	if err != nil {
		return fmt.Errorf("--push-denied-cidrs: %w", err)
	}
	o.Build.Hosts = source.Policy{AllowedHosts: o.AllowedHosts, DeniedCIDRs: cidrs}
	o.Build.DeniedCIDRs = denied
	deployer := &push.Deployer{
		Client:   mgr.GetClient(),
		Live:     mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("kiln-push"),
		Clock:    clock.RealClock{},
		Options:  o.Build,
	}
	if err := mgr.Add(deployer); err != nil {
		return err
	}
	srv := &push.Server{
		Receiver: &push.Receiver{
			Targets:    &push.ClusterTargets{Cache: mgr.GetClient(), Live: mgr.GetAPIReader()},
			Queue:      deployer,
			Deliveries: push.NewDeliveries(10000, 24*time.Hour, clock.RealClock{}),
			MaxBody:    o.MaxBody,
		},
		Options: o.Server,
	}
	if srv.Options.CertDir == "" {
		switch {
		case wh.Enabled && wh.CertDir != "":
			srv.Options.CertDir = wh.CertDir
		case wh.Enabled:
			wh.CertHosts = append(wh.CertHosts, PushServiceName+"."+namespace+".svc", PushServiceName+"."+namespace+".svc.cluster.local")
			wh.ShareCertificate = func(get func(*tls.ClientHelloInfo) (*tls.Certificate, error)) { srv.Options.GetCertificate = get }
		default:
			return errors.New("push needs a certificate: give --push-cert-dir, or turn the webhooks on to share theirs")
		}
	}
	return mgr.Add(srv)
}
