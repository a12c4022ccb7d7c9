package manager

// Controllers report what they do as Events in the namespaces of the objects they manage.
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch
// +kubebuilder:rbac:groups=events.k8s.io,resources=events,verbs=create;patch

// The key tokens are derived from (package tokens) is a Secret in Kiln's namespace, read
// by name; the first replica creates it (create cannot be limited to a name).
// +kubebuilder:rbac:groups="",namespace=kiln-system,resources=secrets,verbs=get,resourceNames=kiln-token-key
// +kubebuilder:rbac:groups="",namespace=kiln-system,resources=secrets,verbs=create
