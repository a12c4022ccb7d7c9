package cli

import (
	"bytes"
	"testing"

	"github.com/google/go-cmp/cmp"
	"k8s.io/cli-runtime/pkg/genericiooptions"

	"kiln.dev/kiln/internal/controlplane"
)

// dev up runs a real node when asked and the machine allows it; otherwise one line says why
// simulated nodes are used, and --real-node=false says nothing.
func TestDevUpDecidesRealNode(t *testing.T) {
	notRoot := controlplane.HostProbes()
	notRoot.EUID = func() int { return 1000 }
	for _, tc := range []struct {
		name     string
		realNode bool
		probes   controlplane.Probes
		want     bool
		wantLine string
	}{
		{"asked, not root", true, notRoot, false,
			"No real node: not running as root (containerd, the kubelet and pod networking need it); simulated nodes are used instead.\n"},
		{"not asked", false, notRoot, false, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var errOut bytes.Buffer
			o := &DevUpOptions{RealNode: tc.realNode, probes: tc.probes, streams: genericiooptions.IOStreams{ErrOut: &errOut}}
			if got := o.decideRealNode(); got != tc.want {
				t.Errorf("decideRealNode() = %v, want %v", got, tc.want)
			}
			if diff := cmp.Diff(tc.wantLine, errOut.String()); diff != "" {
				t.Errorf("printed (-want +got):\n%s", diff)
			}
		})
	}
}
