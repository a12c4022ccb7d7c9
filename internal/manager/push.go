package manager

import (
	"context"
	"net/http"
	"os"
	"time"

	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"

	"kiln.dev/kiln/internal/build"
	"kiln.dev/kiln/internal/push"
)

// PushOptions configure push-to-deploy.
type PushOptions struct {
	// Enabled serves the push receiver on the webhook server (which must be on).
	Enabled bool
	// Build bounds and configures the builds.
	Build push.Options
	// MaxBody bounds an event's body (default push.DefaultMaxBody).
	MaxBody int64
}

// addPush adds the build workers and the repository index to mgr and returns
// the receiver's handlers, for the webhook server.
func addPush(mgr ctrl.Manager, o PushOptions) (map[string]http.Handler, error) {
	if err := push.IndexFields(context.Background(), mgr.GetFieldIndexer()); err != nil {
		return nil, err
	}
	if o.Build.WorkDir == "" {
		o.Build.WorkDir = os.TempDir()
	}
	deployer := &push.Deployer{
		Client:   mgr.GetClient(),
		Live:     mgr.GetAPIReader(),
		Recorder: mgr.GetEventRecorder("kiln-push"),
		Clock:    clock.RealClock{},
		Build:    build.Build,
		Options:  o.Build,
	}
	if err := mgr.Add(deployer); err != nil {
		return nil, err
	}
	r := &push.Receiver{
		Targets:    &push.ClusterTargets{Cache: mgr.GetClient(), Live: mgr.GetAPIReader()},
		Queue:      deployer,
		Deliveries: push.NewDeliveries(10000, 24*time.Hour, clock.RealClock{}),
		MaxBody:    o.MaxBody,
	}
	return map[string]http.Handler{
		push.GitHubPath: r.Handler(push.GitHub),
		push.GitLabPath: r.Handler(push.GitLab),
	}, nil
}
