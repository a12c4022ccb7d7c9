package trainingjob

import (
	"strings"
	"testing"
)

func TestLastCheckpoint(t *testing.T) {
	tests := []struct {
		name, log, want string
	}{
		{"none", "epoch 1 loss=0.3\nepoch 2 loss=0.2\n", ""},
		{"the last one wins", "kiln-checkpoint /kiln/checkpoints/step-100\nkiln-checkpoint /kiln/checkpoints/step-200\nepoch 3\n", "/kiln/checkpoints/step-200"},
		{"after a logger's prefix", "[rank0]: 2026-01-01 INFO kiln-checkpoint /kiln/checkpoints/e3.pt\n", "/kiln/checkpoints/e3.pt"},
		{"outside the volume is ignored", "kiln-checkpoint /kiln/checkpoints/a\nkiln-checkpoint /tmp/b\n", "/kiln/checkpoints/a"},
		{"climbing out is ignored", "kiln-checkpoint /kiln/checkpoints/../output/x\n", ""},
		{"relative is ignored", "kiln-checkpoint checkpoints/x\n", ""},
		{"the volume itself is not a checkpoint", "kiln-checkpoint /kiln/checkpoints\n", ""},
		{"two words are not a path", "kiln-checkpoint /kiln/checkpoints/a b\n", ""},
		{"the word alone is nothing", "kiln-checkpoint\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lastCheckpoint(strings.NewReader(tt.log)); got != tt.want {
				t.Errorf("lastCheckpoint() = %q, want %q", got, tt.want)
			}
		})
	}
}
