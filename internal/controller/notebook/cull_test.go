package notebook

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDecideCull(t *testing.T) {
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	ago := func(d time.Duration) time.Time { return now.Add(-d) }
	at := func(d time.Duration) *time.Time { t := ago(d); return &t }
	server := func(d time.Duration, busy bool) *Activity { return &Activity{Last: ago(d), Busy: busy} }
	const timeout = 30 * time.Minute
	started := ago(3 * time.Hour)
	tests := []struct {
		name string
		in   cullInput
		want cullDecision
	}{
		{
			name: "nothing known: never cull, ask again later",
			in:   cullInput{now: now, idleTimeout: timeout, started: started},
			want: cullDecision{after: 5 * time.Minute},
		},
		{
			name: "nothing known with a short timeout: ask again after it",
			in:   cullInput{now: now, idleTimeout: 10 * time.Second, started: started},
			want: cullDecision{after: 10 * time.Second},
		},
		{
			name: "server active recently: look again when the timeout would run out",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, server: server(10*time.Minute, false)},
			want: cullDecision{known: true, last: ago(10 * time.Minute), source: "server", idle: 10 * time.Minute, after: 20 * time.Minute},
		},
		{
			name: "server idle past the timeout: cull",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, server: server(31*time.Minute, false)},
			want: cullDecision{known: true, last: ago(31 * time.Minute), source: "server", idle: 31 * time.Minute, cull: true},
		},
		{
			name: "idle exactly the timeout: cull",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, server: server(timeout, false)},
			want: cullDecision{known: true, last: ago(timeout), source: "server", idle: timeout, cull: true},
		},
		{
			name: "a busy kernel is activity now",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, server: server(2*time.Hour, true)},
			want: cullDecision{known: true, last: now, source: "server", after: timeout},
		},
		{
			name: "annotation later than the server wins",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, server: server(2*time.Hour, false), annotation: at(5 * time.Minute)},
			want: cullDecision{known: true, last: ago(5 * time.Minute), source: "annotation", idle: 5 * time.Minute, after: 25 * time.Minute},
		},
		{
			name: "server later than the annotation wins",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, server: server(5*time.Minute, false), annotation: at(2 * time.Hour)},
			want: cullDecision{known: true, last: ago(5 * time.Minute), source: "server", idle: 5 * time.Minute, after: 25 * time.Minute},
		},
		{
			name: "server unreachable, old annotation: cull on the annotation",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, annotation: at(time.Hour)},
			want: cullDecision{known: true, last: ago(time.Hour), source: "annotation", idle: time.Hour, cull: true},
		},
		{
			name: "old activity but started again recently: idle counts from the start",
			in:   cullInput{now: now, idleTimeout: timeout, started: ago(time.Minute), annotation: at(5 * time.Hour)},
			want: cullDecision{known: true, last: ago(5 * time.Hour), source: "annotation", idle: time.Minute, after: 29 * time.Minute},
		},
		{
			name: "activity in the future (clock skew) keeps it",
			in:   cullInput{now: now, idleTimeout: timeout, started: started, annotation: at(-time.Minute)},
			want: cullDecision{known: true, last: ago(-time.Minute), source: "annotation", after: timeout},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, decideCull(tc.in), cmp.AllowUnexported(cullDecision{})); diff != "" {
				t.Errorf("decision (-want +got):\n%s", diff)
			}
		})
	}
}
