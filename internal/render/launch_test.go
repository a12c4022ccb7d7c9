package render

import (
	"strings"
	"testing"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
)

func TestLaunch(t *testing.T) {
	twoByTwo := placement.Shape{Nodes: 2, ProcessesPerNode: 2, GPUsPerNode: 2}
	for _, tc := range []struct {
		name      string
		spec      v1alpha1.TrainingJobSpec
		shape     placement.Shape
		want      launch
		statusHas string
	}{
		{"plain python is launched", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"python3", "train.py"}}, twoByTwo, launchTorchrun, "under torchrun (python3 -m torch.distributed.run), 2 processes per pod"},
		{"python -m a package is launched", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"python", "-u", "-m", "pkg.train"}}, twoByTwo, launchTorchrun, "under torchrun"},
		{"torchrun runs as given", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"torchrun", "train.py"}}, twoByTwo, launchIsLauncher, "is a launcher"},
		{"/usr/bin/torchrun runs as given", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"/usr/local/bin/torchrun", "train.py"}}, twoByTwo, launchIsLauncher, "is a launcher"},
		{"python3 -m torch.distributed.run runs as given", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"python3", "-m", "torch.distributed.run", "train.py"}}, twoByTwo, launchIsLauncher, "is a launcher"},
		{"a shell script calling torchrun runs as given", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"sh", "-c"}, Args: []string{"pip install x && torchrun train.py"}}, twoByTwo, launchIsLauncher, "is a launcher"},
		{"opted out", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Launcher: v1alpha1.LauncherNone, Command: []string{"python3", "train.py"}}, twoByTwo, launchOptedOut, "spec.launcher is none"},
		{"one process per pod", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch, Command: []string{"python3", "train.py"}}, placement.Shape{Nodes: 2, ProcessesPerNode: 1, GPUsPerNode: 1}, launchOnePerPod, "WORLD_SIZE, RANK"},
		{"no command", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkPyTorch}, twoByTwo, launchNoCommand, "image's entrypoint"},
		{"not pytorch", v1alpha1.TrainingJobSpec{Framework: v1alpha1.FrameworkJAX, Command: []string{"python3", "train.py"}}, twoByTwo, launchAsGiven, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := launchOf(&tc.spec, tc.shape); got != tc.want {
				t.Errorf("launchOf = %d, want %d", got, tc.want)
			}
			got := Launch(&v1alpha1.TrainingJob{Spec: tc.spec}, tc.shape)
			if !strings.Contains(got, tc.statusHas) || (tc.statusHas == "") != (got == "") {
				t.Errorf("Launch = %q, want it to contain %q", got, tc.statusHas)
			}
		})
	}
}
