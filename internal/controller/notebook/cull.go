package notebook

import (
	"time"
)

// unknownRetry is how soon a notebook whose activity is unknown is asked again:
// the server may just be starting, or a front end may set the annotation later
// (which wakes the controller at once anyway).
const unknownRetry = 5 * time.Minute

// cullInput is what the culling decision rests on.
type cullInput struct {
	now         time.Time
	idleTimeout time.Duration
	// started is when Kiln last started the notebook: idle time never counts
	// from before it, or a notebook started again after a cull would be culled
	// at once on its old activity.
	started time.Time
	// server is the server's activity; nil when it could not be read.
	server *Activity
	// annotation is the kiln.dev/last-activity time; nil when absent or invalid.
	annotation *time.Time
}

// cullDecision is what to do.
type cullDecision struct {
	// known is false when neither the server nor the annotation spoke.
	known bool
	// last is the latest activity known (zero when none).
	last time.Time
	// source names where last came from: "server" or "annotation".
	source string
	// idle is how long the notebook has been idle, counted from last or from
	// started, whichever is later.
	idle time.Duration
	// cull says to stop the notebook now.
	cull bool
	// after is when to look again: when the idle timeout would run out if
	// nothing happens until then.
	after time.Duration
}

// decideCull culls a notebook only on known activity older than the idle
// timeout. Of the two sources, the later wins: either one having seen the user
// recently is enough to keep the notebook.
func decideCull(in cullInput) cullDecision {
	var d cullDecision
	if in.server != nil {
		d.known, d.last, d.source = true, in.server.Last, "server"
		if in.server.Busy {
			d.last = in.now
		}
	}
	if a := in.annotation; a != nil {
		if !d.known || a.After(d.last) {
			d.last, d.source = *a, "annotation"
		}
		d.known = true
	}
	if !d.known {
		d.after = min(unknownRetry, max(in.idleTimeout, time.Second))
		return d
	}
	from := d.last
	if in.started.After(from) {
		from = in.started
	}
	d.idle = max(in.now.Sub(from), 0)
	if d.idle >= in.idleTimeout {
		d.cull = true
		return d
	}
	d.after = in.idleTimeout - d.idle
	return d
}
