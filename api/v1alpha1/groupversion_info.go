// Package v1alpha1 holds the kiln.dev/v1alpha1 API: the high-level kinds a data
// scientist writes, which Kiln turns into plain Kubernetes objects.
//
// This package imports only k8s.io/api and apimachinery, so the CLI and other
// tools can use it without pulling in a controller framework.
//
// +kubebuilder:object:generate=true
// +groupName=kiln.dev
package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

var (
	// GroupVersion is the API group and version of every Kiln kind.
	GroupVersion = schema.GroupVersion{Group: "kiln.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Kiln kinds with a runtime.Scheme.
	SchemeBuilder = runtime.NewSchemeBuilder(addKnownTypes)

	// AddToScheme adds the Kiln kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)

// knownTypes holds every Kiln kind; each kind's file adds itself in an init function.
var knownTypes []runtime.Object

func register(objs ...runtime.Object) { knownTypes = append(knownTypes, objs...) }

func addKnownTypes(s *runtime.Scheme) error {
	s.AddKnownTypes(GroupVersion, knownTypes...)
	metav1.AddToGroupVersion(s, GroupVersion)
	return nil
}
