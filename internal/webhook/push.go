package webhook

import (
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"kiln.dev/kiln/internal/push"
)

// withPush adds the check of push-to-deploy annotations to a kind's validation,
// so a half-annotated object is refused with the annotation's path rather than
// never deploying.
func withPush[T client.Object](validate func(T) field.ErrorList) func(T) field.ErrorList {
	return func(obj T) field.ErrorList {
		return append(validate(obj), push.Validate(obj.GetAnnotations())...)
	}
}

func withPushUpdate[T client.Object](validate func(newObj, oldObj T) field.ErrorList) func(T, T) field.ErrorList {
	return func(newObj, oldObj T) field.ErrorList {
		return append(validate(newObj, oldObj), push.Validate(newObj.GetAnnotations())...)
	}
}
