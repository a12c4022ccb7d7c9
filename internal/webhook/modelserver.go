package webhook

import (
	"context"

	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/webhook/admission"

	"kiln.dev/kiln/api/v1alpha1"
	"kiln.dev/kiln/internal/validation"
)

// admitModelServer refuses, at creation, a trainingjob:// model whose TrainingJob is
// missing or failed, and warns when it has not finished yet.
func admitModelServer(ctx context.Context, c Cluster, ms *v1alpha1.ModelServer) (field.ErrorList, admission.Warnings, error) {
	jobs, err := validation.ModelTrainingJobs(ctx, c.Cached, ms)
	if err != nil {
		return nil, nil, err
	}
	errs, warnings := validation.ValidateModelTrainingJobs(ms, jobs)
	return errs, warnings, nil
}
