// Package v1alpha1 holds the kiln.dev/v1alpha1 API: the high-level kinds a data
// scientist writes, which Kiln turns into plain Kubernetes objects.
//
// This package imports only k8s.io/api, apimachinery and controller-runtime's
// scheme builder, so the CLI and other tools can use it without a manager.
//
// +kubebuilder:object:generate=true
// +groupName=kiln.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of every Kiln kind.
	GroupVersion = schema.GroupVersion{Group: "kiln.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the Kiln kinds with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the Kiln kinds to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
