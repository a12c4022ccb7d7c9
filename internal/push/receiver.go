package push

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/util/cache"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
)

// DefaultMaxBody bounds an event's body. GitHub caps payloads at 25 MB, but a push
// event's is far smaller unless it lists thousands of commits.
const DefaultMaxBody = 1 << 20

// Request is a verified push for one target.
type Request struct {
	Target Target
	// Commit is the head the event announced, which the build Job builds if
	// the branch still points at it (a later push builds a later head).
	Commit   string
	Provider Provider
	Delivery string
}

// Queue takes verified pushes; Enqueue fails with ErrQueueFull when it cannot.
type Queue interface {
	Enqueue(Request) error
}

// ErrQueueFull: too many objects wait for a build.
var ErrQueueFull = errors.New("the build queue is full")

// Receiver serves push events. Per event, in this order: the body is bounded
// (413), parsed (400), its repository's annotated objects found (404), the
// signature checked against each one's secret (401 when none verifies), the
// delivery id remembered (a replay is answered 200 and changes nothing), and each
// verified object whose branch was pushed is queued for a build (202). Neither
// secrets nor bodies are logged.
type Receiver struct {
	Targets    Targets
	Queue      Queue
	Deliveries *Deliveries
	// MaxBody bounds a body's size (default DefaultMaxBody).
	MaxBody int64
	// Limit takes one of a repository's (RepoKey) verified deliveries, false when
	// it is over its rate (429); nil limits nothing. Only verified deliveries
	// count, so forged ones cannot use up a repository's rate.
	Limit func(repo string) bool
}

// Reply is the JSON body of every answer.
type Reply struct {
	Message string   `json:"message"`
	Queued  []string `json:"queued,omitempty"`
}

// Handler serves p's events.
func (r *Receiver) Handler(p Provider) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		code, reply := r.serve(req.Context(), p, req, w)
		log := ctrl.LoggerFrom(req.Context()).WithValues("provider", p, "status", code)
		log.V(1).Info("push event", "message", reply.Message, "queued", reply.Queued)
		switch code {
		case http.StatusServiceUnavailable:
			w.Header().Set("Retry-After", "60")
		case http.StatusTooManyRequests:
			w.Header().Set("Retry-After", "10")
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		_ = json.NewEncoder(w).Encode(reply)
	})
}

func (r *Receiver) serve(ctx context.Context, p Provider, req *http.Request, w http.ResponseWriter) (int, Reply) {
	if req.Method != http.MethodPost {
		return http.StatusMethodNotAllowed, Reply{Message: "push events are POSTed"}
	}
	limit := r.MaxBody
	if limit <= 0 {
		limit = DefaultMaxBody
	}
	if req.ContentLength > limit {
		return http.StatusRequestEntityTooLarge, Reply{Message: fmt.Sprintf("the body is over %d bytes", limit)}
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, req.Body, limit))
	if err != nil {
		var tooLarge *http.MaxBytesError
		if errors.As(err, &tooLarge) {
			return http.StatusRequestEntityTooLarge, Reply{Message: fmt.Sprintf("the body is over %d bytes", limit)}
		}
		return http.StatusBadRequest, Reply{Message: "reading the body failed"}
	}
	ev, err := p.parse(req.Header, body)
	if err != nil {
		return http.StatusBadRequest, Reply{Message: err.Error()}
	}
	if ev.Delivery == "" {
		return http.StatusBadRequest, Reply{Message: "no delivery id header"}
	}
	if len(ev.Repositories) == 0 {
		return http.StatusBadRequest, Reply{Message: "the event names no repository"}
	}
	targets, err := r.Targets.Find(ctx, ev.Repositories)
	if err != nil {
		ctrl.LoggerFrom(ctx).Error(err, "finding the objects of a push event")
		return http.StatusInternalServerError, Reply{Message: "finding the repository's objects failed"}
	}
	if len(targets) == 0 {
		return http.StatusNotFound, Reply{Message: "no object is annotated for this repository"}
	}
	var verified []Target
	for _, t := range targets {
		secret, err := r.Targets.Secret(ctx, t)
		if err != nil {
			ctrl.LoggerFrom(ctx).Info("no webhook secret for a push event", "target", t.String(), "problem", err.Error())
			continue
		}
		if p.verify(req.Header, body, secret) {
			verified = append(verified, t)
		}
	}
	if len(verified) == 0 {
		return http.StatusUnauthorized, Reply{Message: "the signature matches no secret of this repository's objects"}
	}
	if r.Limit != nil && !r.Limit(RepoKey(verified[0].Config.Repository)) {
		return http.StatusTooManyRequests, Reply{Message: "too many deliveries for this repository; redeliver later"}
	}
	// Only a verified delivery is remembered, so forged ones cannot block real ones.
	key := string(p) + "/" + ev.Delivery
	if !r.Deliveries.First(key) {
		return http.StatusOK, Reply{Message: "delivery " + ev.Delivery + " was received before; ignored"}
	}
	if !ev.Push {
		return http.StatusOK, Reply{Message: fmt.Sprintf("%q events change nothing", ev.Kind)}
	}
	if ev.Branch == "" || ev.Commit == "" {
		return http.StatusOK, Reply{Message: "not a push of a branch head; nothing to build"}
	}
	var queued []string
	full := 0
	for _, t := range verified {
		if t.Config.Branch != ev.Branch {
			continue
		}
		err := r.Queue.Enqueue(Request{Target: t, Commit: ev.Commit, Provider: p, Delivery: ev.Delivery})
		switch {
		case errors.Is(err, ErrQueueFull):
			full++
		case err != nil:
			return http.StatusInternalServerError, Reply{Message: "queueing the build failed"}
		default:
			queued = append(queued, t.String())
		}
	}
	if full > 0 && len(queued) == 0 {
		// Let the provider's redelivery through.
		r.Deliveries.Forget(key)
		return http.StatusServiceUnavailable, Reply{Message: ErrQueueFull.Error() + "; redeliver later"}
	}
	if len(queued) == 0 {
		return http.StatusOK, Reply{Message: "no object deploys branch " + ev.Branch}
	}
	msg := fmt.Sprintf("building %s of branch %s", short(ev.Commit), ev.Branch)
	if full > 0 {
		msg += fmt.Sprintf("; %d object(s) not queued: %v", full, ErrQueueFull)
	}
	return http.StatusAccepted, Reply{Message: msg, Queued: queued}
}

// Deliveries remembers delivery ids for TTL, at most Size of them (the oldest
// are forgotten first). It is per process, a fast first filter: another replica
// of the manager, or this one after a restart, does not know them, and the
// Deployer's record on the object (AnnotationPushDeliveries) is what holds
// across replicas.
type Deliveries struct {
	mu    sync.Mutex
	ttl   time.Duration
	cache *cache.LRUExpireCache
}

// NewDeliveries remembers up to size ids for ttl each.
func NewDeliveries(size int, ttl time.Duration, clk clock.Clock) *Deliveries {
	return &Deliveries{ttl: ttl, cache: cache.NewLRUExpireCacheWithClock(size, clk)}
}

// First records id and says whether it was new.
func (d *Deliveries) First(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, seen := d.cache.Get(id); seen {
		return false
	}
	d.cache.Add(id, struct{}{}, d.ttl)
	return true
}

// Forget drops id, so that its redelivery is taken.
func (d *Deliveries) Forget(id string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.cache.Remove(id)
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}
