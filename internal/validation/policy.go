package validation

import (
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/api/v1alpha1"
)

// Policy is what a cluster administrator lets Kiln objects ask of the nodes. Everything
// that reaches into the host is refused unless allowed here: a user who may create
// TrainingJobs must not gain a node's file system or network through them. (The overlay
// has no way to ask for privileged containers or the host's PID namespace at all.)
type Policy struct {
	// AllowHostPath lets pod overlays mount hostPath volumes.
	AllowHostPath bool
	// AllowHostNetwork lets network.hostNetwork run pods in the node's network namespace,
	// as some RDMA fabrics need.
	AllowHostNetwork bool
}

// TrainingJobSpec lists what spec (at path p) asks of the hosts beyond the policy.
func (pol Policy) TrainingJobSpec(spec *v1alpha1.TrainingJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Network != nil && spec.Network.HostNetwork && !pol.AllowHostNetwork {
		errs = append(errs, field.Forbidden(p.Child("network", "hostNetwork"),
			"host networking is not allowed on this cluster; an administrator can allow it with the manager's --allow-host-network"))
	}
	if spec.PodTemplate != nil && !pol.AllowHostPath {
		for i, v := range spec.PodTemplate.Volumes {
			if v.HostPath != nil {
				errs = append(errs, field.Forbidden(p.Child("podTemplate", "volumes").Index(i).Child("hostPath"),
					"hostPath volumes are not allowed on this cluster; use a PersistentVolumeClaim, or ask an administrator to start the manager with --allow-host-path"))
			}
		}
	}
	return errs
}
