package render

import (
	"fmt"
	"path"
	"strings"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/placement"
)

// torchLauncher is how Kiln starts torchrun: as a module of the image's python3,
// since images may ship torch without the torchrun console script. Its settings
// come from the PET_* environment, which every release reads (torch 1.13 knows
// only the underscore spellings of the flags).
var torchLauncher = []string{"python3", "-m", "torch.distributed.run"}

// launch is how a TrainingJob's command starts.
type launch int

const (
	launchAsGiven    launch = iota // the command runs as given, with the framework's environment
	launchTorchrun                 // Kiln wraps the command in torchrun
	launchOnePerPod                // one process per pod: the torch.distributed variables are set directly
	launchIsLauncher               // the command is a launcher already
	launchNoCommand                // no command: the image's entrypoint runs
	launchOptedOut                 // spec.launcher is none
)

func launchOf(spec *v1alpha1.TrainingJobSpec, s placement.Shape) launch {
	switch {
	case spec.Framework != v1alpha1.FrameworkPyTorch:
		return launchAsGiven
	case spec.Launcher == v1alpha1.LauncherNone:
		return launchOptedOut
	case isLauncher(spec.Command, spec.Args):
		return launchIsLauncher
	case s.ProcessesPerNode <= 1:
		return launchOnePerPod
	case len(spec.Command) == 0:
		return launchNoCommand
	}
	return launchTorchrun
}

// Launch says, for the Running condition, how the job's command was started.
func Launch(tj *v1alpha1.TrainingJob, s placement.Shape) string {
	switch launchOf(&tj.Spec, s) {
	case launchTorchrun:
		return fmt.Sprintf("Kiln runs the command under torchrun (%s), %d processes per pod; set spec.launcher: none to run it as given",
			strings.Join(torchLauncher, " "), s.ProcessesPerNode)
	case launchOnePerPod:
		return "one process per pod: the command runs as given, with WORLD_SIZE, RANK, LOCAL_RANK, MASTER_ADDR and MASTER_PORT set"
	case launchIsLauncher:
		return "the command is a launcher, so it runs as given, with torchrun's PET_* environment"
	case launchNoCommand:
		return fmt.Sprintf("no spec.command: the image's entrypoint runs as given, once per pod, with torchrun's PET_* environment for %d processes per pod", s.ProcessesPerNode)
	case launchOptedOut:
		return "spec.launcher is none: the command runs as given, once per pod, with torchrun's PET_* environment"
	}
	return ""
}

// isLauncher says whether a command starts torch's processes itself: torchrun,
// python -m torch.distributed.run (or .launch), deepspeed, accelerate, or a
// shell script that calls one of them.
func isLauncher(command, args []string) bool {
	if len(command) == 0 {
		return false
	}
	switch base := path.Base(command[0]); {
	case base == "torchrun" || base == "deepspeed" || base == "accelerate":
		return true
	case base == "sh" || base == "bash":
		script := strings.Join(append(append([]string{}, command[1:]...), args...), " ")
		return strings.Contains(script, "torchrun") || strings.Contains(script, "torch.distributed.run") ||
			strings.Contains(script, "torch.distributed.launch") || strings.Contains(script, "deepspeed") ||
			strings.Contains(script, "accelerate launch")
	case strings.HasPrefix(base, "python"):
		for i := 1; i < len(command); i++ {
			switch {
			case command[i] == "-m" && i+1 < len(command):
				m := command[i+1]
				return m == "torch.distributed.run" || m == "torch.distributed.launch" || m == "deepspeed" || m == "accelerate.commands.launch"
			case !strings.HasPrefix(command[i], "-"):
				return false // a script: not a launcher
			}
		}
	}
	return false
}
