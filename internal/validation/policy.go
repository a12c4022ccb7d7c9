package validation

import (
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"kiln.dev/kiln/api/v1alpha1"
)

// Policy is what a cluster administrator lets Kiln objects ask of the nodes. Everything
// that reaches into the host is refused unless allowed here: a user who may create
// TrainingJobs must not gain a node's file system, network or kernel through them. Kiln
// renders every pod to meet the restricted Pod Security profile; what a security context
// overlay may change without the administrator is what that profile still allows (a
// non-root user, NET_BIND_SERVICE, a Localhost seccomp profile, read-only roots).
type Policy struct {
	// AllowHostPath lets pod overlays mount hostPath volumes.
	AllowHostPath bool
	// AllowHostNetwork lets network.hostNetwork run pods in the node's network namespace,
	// as some RDMA fabrics need.
	AllowHostNetwork bool
	// AllowedCapabilities are the Linux capabilities a containerSecurityContext may add
	// besides NET_BIND_SERVICE, such as IPC_LOCK for RDMA; "ALL" allows any.
	AllowedCapabilities []corev1.Capability
	// AllowPrivileged lets security contexts ask for privileged containers, privilege
	// escalation, an Unconfined seccomp or AppArmor profile, an unmasked /proc, SELinux
	// options beyond a container type, or Windows host processes.
	AllowPrivileged bool
	// AllowRoot lets security contexts run containers as root (runAsUser 0 or
	// runAsNonRoot false).
	AllowRoot bool
}

// TrainingJobSpec lists what spec (at path p) asks of the hosts beyond the policy.
func (pol Policy) TrainingJobSpec(spec *v1alpha1.TrainingJobSpec, p *field.Path) field.ErrorList {
	var errs field.ErrorList
	if spec.Network != nil && spec.Network.HostNetwork && !pol.AllowHostNetwork {
		errs = append(errs, field.Forbidden(p.Child("network", "hostNetwork"),
			"host networking is not allowed on this cluster; an administrator can allow it with the manager's --allow-host-network"))
	}
	if pt := spec.PodTemplate; pt != nil {
		if !pol.AllowHostPath {
			for i, v := range pt.Volumes {
				if v.HostPath != nil {
					errs = append(errs, field.Forbidden(p.Child("podTemplate", "volumes").Index(i).Child("hostPath"),
						"hostPath volumes are not allowed on this cluster; use a PersistentVolumeClaim, or ask an administrator to start the manager with --allow-host-path"))
				}
			}
		}
		errs = append(errs, pol.PodSecurityContext(pt.SecurityContext, p.Child("podTemplate", "securityContext"))...)
		errs = append(errs, pol.ContainerSecurityContext(pt.ContainerSecurityContext, p.Child("podTemplate", "containerSecurityContext"))...)
	}
	return errs
}

// NotebookSpec lists what spec (at path p) asks of the hosts beyond the policy.
func (pol Policy) NotebookSpec(spec *v1alpha1.NotebookSpec, p *field.Path) field.ErrorList {
	errs := pol.PodSecurityContext(spec.SecurityContext, p.Child("securityContext"))
	return append(errs, pol.ContainerSecurityContext(spec.ContainerSecurityContext, p.Child("containerSecurityContext"))...)
}

// ModelServerSpec lists what spec (at path p) asks of the hosts beyond the policy.
func (pol Policy) ModelServerSpec(spec *v1alpha1.ModelServerSpec, p *field.Path) field.ErrorList {
	return pol.ContainerSecurityContext(spec.ContainerSecurityContext, p.Child("containerSecurityContext"))
}

// restrictedCapability is the one capability the restricted profile lets a container add.
const restrictedCapability = "NET_BIND_SERVICE"

// ContainerSecurityContext lists what a container security context overlay (at path p)
// asks beyond the restricted Pod Security profile and the policy.
func (pol Policy) ContainerSecurityContext(sc *corev1.SecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	var errs field.ErrorList
	if sc.Privileged != nil && *sc.Privileged && !pol.AllowPrivileged {
		errs = append(errs, pol.privileged(p.Child("privileged"), "privileged containers"))
	}
	if sc.AllowPrivilegeEscalation != nil && *sc.AllowPrivilegeEscalation && !pol.AllowPrivileged {
		errs = append(errs, pol.privileged(p.Child("allowPrivilegeEscalation"), "privilege escalation"))
	}
	if sc.ProcMount != nil && *sc.ProcMount != corev1.DefaultProcMount && !pol.AllowPrivileged {
		errs = append(errs, pol.privileged(p.Child("procMount"), "an unmasked /proc"))
	}
	if c := sc.Capabilities; c != nil {
		for i, name := range c.Add {
			if !pol.capabilityAllowed(name) {
				errs = append(errs, field.Forbidden(p.Child("capabilities", "add").Index(i), fmt.Sprintf(
					"capability %s is not allowed on this cluster: the restricted Pod Security profile allows adding only %s; "+
						"an administrator can allow it with the manager's --allow-capabilities=%s", name, restrictedCapability, canonicalCapability(name))))
			}
		}
	}
	errs = append(errs, pol.common(p, sc.RunAsUser, sc.RunAsNonRoot, sc.SeccompProfile, sc.AppArmorProfile, sc.SELinuxOptions, sc.WindowsOptions)...)
	return errs
}

// PodSecurityContext lists what a pod security context overlay (at path p) asks beyond
// the restricted Pod Security profile and the policy. Sysctls are left to the kubelet,
// which refuses unsafe ones unless the node allows them.
func (pol Policy) PodSecurityContext(sc *corev1.PodSecurityContext, p *field.Path) field.ErrorList {
	if sc == nil {
		return nil
	}
	return pol.common(p, sc.RunAsUser, sc.RunAsNonRoot, sc.SeccompProfile, sc.AppArmorProfile, sc.SELinuxOptions, sc.WindowsOptions)
}

// common checks the fields pod and container security contexts share.
func (pol Policy) common(p *field.Path, user *int64, nonRoot *bool, seccomp *corev1.SeccompProfile, apparmor *corev1.AppArmorProfile,
	selinux *corev1.SELinuxOptions, windows *corev1.WindowsSecurityContextOptions) field.ErrorList {
	var errs field.ErrorList
	if !pol.AllowRoot {
		if user != nil && *user == 0 {
			errs = append(errs, field.Forbidden(p.Child("runAsUser"),
				"running as root is not allowed on this cluster; use the image's non-root user, or ask an administrator to start the manager with --allow-root"))
		}
		if nonRoot != nil && !*nonRoot {
			errs = append(errs, field.Forbidden(p.Child("runAsNonRoot"),
				"running as root is not allowed on this cluster; leave runAsNonRoot unset, or ask an administrator to start the manager with --allow-root"))
		}
	}
	if pol.AllowPrivileged {
		return errs
	}
	if seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeUnconfined {
		errs = append(errs, pol.privileged(p.Child("seccompProfile", "type"), "an Unconfined seccomp profile"))
	}
	if apparmor != nil && apparmor.Type == corev1.AppArmorProfileTypeUnconfined {
		errs = append(errs, pol.privileged(p.Child("appArmorProfile", "type"), "an Unconfined AppArmor profile"))
	}
	if selinux != nil {
		if selinux.User != "" {
			errs = append(errs, pol.privileged(p.Child("seLinuxOptions", "user"), "an SELinux user"))
		}
		if selinux.Role != "" {
			errs = append(errs, pol.privileged(p.Child("seLinuxOptions", "role"), "an SELinux role"))
		}
		// The baseline profile's container types.
		if t := selinux.Type; t != "" && !slices.Contains([]string{"container_t", "container_init_t", "container_kvm_t", "container_engine_t"}, t) {
			errs = append(errs, pol.privileged(p.Child("seLinuxOptions", "type"), "SELinux type "+t))
		}
	}
	if windows != nil && windows.HostProcess != nil && *windows.HostProcess {
		errs = append(errs, pol.privileged(p.Child("windowsOptions", "hostProcess"), "Windows host processes"))
	}
	return errs
}

func (pol Policy) privileged(p *field.Path, what string) *field.Error {
	return field.Forbidden(p, what+" is not allowed on this cluster: the restricted Pod Security profile forbids it; "+
		"an administrator can allow it with the manager's --allow-privileged")
}

func (pol Policy) capabilityAllowed(c corev1.Capability) bool {
	name := canonicalCapability(c)
	if name == restrictedCapability {
		return true
	}
	return slices.ContainsFunc(pol.AllowedCapabilities, func(a corev1.Capability) bool {
		a = corev1.Capability(canonicalCapability(a))
		return a == "ALL" || string(a) == name
	})
}

// canonicalCapability is a capability's name as the restricted profile spells it:
// upper case, without the CAP_ prefix the container runtime also accepts.
func canonicalCapability(c corev1.Capability) string {
	return strings.TrimPrefix(strings.ToUpper(string(c)), "CAP_")
}
