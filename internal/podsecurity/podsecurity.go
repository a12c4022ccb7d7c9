// Package podsecurity checks pods against the restricted Pod Security profile with the
// admission plugin's own checks (k8s.io/pod-security-admission), as a pure function: tests
// of Kiln's renderers and manifests use it to show that what Kiln creates is admitted in a
// namespace labelled pod-security.kubernetes.io/enforce=restricted.
package podsecurity

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// Restricted lists how a pod breaks the latest restricted profile, one line per failed
// check; none means the API server admits it.
func Restricted(meta *metav1.ObjectMeta, spec *corev1.PodSpec) ([]string, error) {
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		return nil, err
	}
	level := psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}
	var out []string
	for _, r := range evaluator.EvaluatePod(level, meta, spec) {
		if !r.Allowed {
			out = append(out, fmt.Sprintf("%s (%s)", r.ForbiddenReason, r.ForbiddenDetail))
		}
	}
	return out, nil
}

// Workload is an object of a YAML stream that makes pods.
type Workload struct {
	Kind, Name string
	Template   corev1.PodTemplateSpec
}

// Workloads are the Pods, Jobs, Deployments, StatefulSets and DaemonSets of a YAML stream;
// other documents are skipped.
func Workloads(data []byte) ([]Workload, error) {
	var out []Workload
	d := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	for {
		// Every workload kind has its pod template at spec.template; a Pod is its own.
		var doc struct {
			metav1.TypeMeta   `json:",inline"`
			metav1.ObjectMeta `json:"metadata"`
			Spec              struct {
				corev1.PodSpec `json:",inline"`
				Template       corev1.PodTemplateSpec `json:"template"`
			} `json:"spec"`
		}
		if err := d.Decode(&doc); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		switch doc.Kind {
		case "Pod":
			out = append(out, Workload{Kind: doc.Kind, Name: doc.Name, Template: corev1.PodTemplateSpec{ObjectMeta: doc.ObjectMeta, Spec: doc.Spec.PodSpec}})
		case "Job", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet":
			out = append(out, Workload{Kind: doc.Kind, Name: doc.Name, Template: doc.Spec.Template})
		}
	}
}
