package webhook

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// admitNotebook warns, at creation, about GPUs no node of the cluster offers.
func admitNotebook(ctx context.Context, c Cluster, nb *v1alpha1.Notebook) (field.ErrorList, admission.Warnings, error) {
	var nodes corev1.NodeList
	if err := c.Cached.List(ctx, &nodes); err != nil {
		return nil, nil, fmt.Errorf("listing nodes: %w", err)
	}
	return nil, validation.NotebookWarnings(nb, nodes.Items), nil
}
