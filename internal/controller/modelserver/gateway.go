package modelserver

import (
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/discovery"
	"k8s.io/utils/clock"
	gatewayv1 "sigs.k8s.io/gateway-api/apis/v1"
)

// GatewayDetector says whether the cluster serves Gateway API HTTPRoutes,
// asking discovery at most once per TTL: the answer changes when someone
// installs or removes the CRDs, which is rare, and every reconcile asks.
type GatewayDetector struct {
	Discovery discovery.DiscoveryInterface
	Clock     clock.PassiveClock
	TTL       time.Duration

	mu      sync.Mutex
	checked time.Time
	found   bool
}

// Installed reports whether gateway.networking.k8s.io/v1 serves httproutes.
func (g *GatewayDetector) Installed() (bool, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.Clock.Now()
	if !g.checked.IsZero() && now.Sub(g.checked) < g.TTL {
		return g.found, nil
	}
	list, err := g.Discovery.ServerResourcesForGroupVersion(gatewayv1.GroupVersion.String())
	switch {
	case apierrors.IsNotFound(err):
		g.found = false
	case err != nil:
		return false, err
	default:
		g.found = false
		for _, r := range list.APIResources {
			if r.Name == "httproutes" {
				g.found = true
			}
		}
	}
	g.checked = now
	return g.found, nil
}
