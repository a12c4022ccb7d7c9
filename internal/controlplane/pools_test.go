package controlplane

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
)

func TestParsePools(t *testing.T) {
	for _, tc := range []struct {
		spec    string
		want    []NodePool
		wantErr string
	}{
		{spec: "a100=4x8", want: []NodePool{{Name: "a100", Count: 4, GPUs: 8, GPUProduct: DefaultGPUProduct}}},
		{spec: "4x8, 8x4@NVIDIA-L4 ,2x0", want: []NodePool{
			{Name: "gpu8", Count: 4, GPUs: 8, GPUProduct: DefaultGPUProduct},
			{Name: "gpu4", Count: 8, GPUs: 4, GPUProduct: "NVIDIA-L4"},
			{Name: "cpu", Count: 2},
		}},
		{spec: DefaultPools, want: []NodePool{
			{Name: "a100", Count: 2, GPUs: 8, GPUProduct: DefaultGPUProduct},
			{Name: "l4", Count: 2, GPUs: 4, GPUProduct: "NVIDIA-L4"},
			{Name: "cpu", Count: 1},
		}},
		{spec: "8 GPU", wantErr: `node pool "8 GPU": want [NAME=]COUNTxGPUS[@PRODUCT]`},
		{spec: "a100=0x8", wantErr: "node count must be between 1 and 500"},
		{spec: "a100=2x65", wantErr: "GPUs per node must be between 0 and 64"},
		{spec: "cpu=2x0@NVIDIA-L4", wantErr: "a GPU product needs GPUs per node above 0"},
		{spec: "a=1x8,a=1x4", wantErr: `pool name "a" used twice`},
		{spec: "Big=1x8", wantErr: "want [NAME=]COUNTxGPUS"},
		{spec: " , ", wantErr: "no node pools"},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := ParsePools(tc.spec)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("got %v, want error containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Fatalf("pools (-want +got):\n%s", d)
			}
			// String gives back a spec that parses to the same pools.
			var specs []string
			for _, p := range got {
				specs = append(specs, p.String())
			}
			again, err := ParsePools(strings.Join(specs, ","))
			if err != nil || !cmp.Equal(got, again) {
				t.Fatalf("round trip of %v: %v %v", specs, again, err)
			}
		})
	}
}

func TestPoolNodes(t *testing.T) {
	gpu := NodePool{Name: "a100", Count: 2, GPUs: 8, GPUProduct: DefaultGPUProduct}.Nodes()
	if len(gpu) != 2 || gpu[1].Name != "a100-1" {
		t.Fatalf("names: %v", []string{gpu[0].Name, gpu[1].Name})
	}
	n := gpu[0]
	if q := n.Status.Allocatable[GPUResource]; q.Value() != 8 {
		t.Errorf("allocatable GPUs = %s", q.String())
	}
	for k, v := range map[string]string{
		PoolLabel: "a100", "nvidia.com/gpu.product": DefaultGPUProduct, "nvidia.com/gpu.count": "8",
		"node.kubernetes.io/instance-type": "sim-8x-nvidia-a100-sxm4-80gb",
	} {
		if n.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, n.Labels[k], v)
		}
	}
	want := []corev1.Taint{{Key: GPUTaintKey, Value: "present", Effect: corev1.TaintEffectNoSchedule}}
	if d := cmp.Diff(want, n.Spec.Taints); d != "" {
		t.Errorf("taints (-want +got):\n%s", d)
	}
	cpu := NodePool{Name: "cpu", Count: 1}.Nodes()[0]
	if _, ok := cpu.Status.Allocatable[GPUResource]; ok || len(cpu.Spec.Taints) != 0 || cpu.Labels["nvidia.com/gpu.present"] != "" {
		t.Errorf("a CPU node must have no GPUs, GPU labels or taints: %+v", cpu)
	}
}
