package framework

import (
	"fmt"
	"os"
	"testing"
)

type recordingT struct {
	testing.TB
	fatal, skip string
}

func (r *recordingT) Helper()                      {}
func (r *recordingT) Fatalf(f string, args ...any) { r.fatal = fmt.Sprintf(f, args...) }
func (r *recordingT) Skip(args ...any)             { r.skip = fmt.Sprint(args...) }

// Without a real node a test skips on a laptop and fails in CI as root; with one it goes on.
func TestSkipWithoutRealNode(t *testing.T) {
	for _, c := range []struct {
		ci, reason         string
		wantFail, wantSkip bool
	}{
		{ci: "", reason: "runc is not installed", wantSkip: true},
		{ci: "true", reason: "runc is not installed", wantFail: os.Geteuid() == 0, wantSkip: os.Geteuid() != 0},
		{ci: "true", reason: ""},
	} {
		t.Setenv("CI", c.ci)
		r := &recordingT{}
		SkipWithoutRealNode(r, c.reason)
		if (r.fatal != "") != c.wantFail || (r.skip != "") != c.wantSkip {
			t.Errorf("CI=%q reason %q: fatal %q, skip %q", c.ci, c.reason, r.fatal, r.skip)
		}
	}
}
