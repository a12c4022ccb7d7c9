{{/* An image of values.images: repository@digest when a digest is set, else repository:tag. */}}
{{- define "kiln.image" -}}
{{- $root := index . 0 -}}
{{- $img := index . 1 -}}
{{- if $img.digest -}}
{{ $img.repository }}@{{ $img.digest }}
{{- else -}}
{{ $img.repository }}:{{ $img.tag | default $root.Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* The labels of the manager's pods, also its selector: the same as config/default's. */}}
{{- define "kiln.selectorLabels" -}}
app.kubernetes.io/name: kiln
app.kubernetes.io/component: manager
{{- end -}}

{{/*
The objects copied from config/ into files/ (make generate), as one YAML stream: each document
read, its kiln-system namespace references made the release's, the webhook configurations
annotated for cert-manager's CA injector when it issues the certificate.
*/}}
{{- define "kiln.copied" -}}
{{- $root := index . 0 -}}
{{- $ns := $root.Release.Namespace -}}
{{- range $path, $_ := $root.Files.Glob (index . 1) }}
{{- range $doc := regexSplit "(?m)^---\\s*$" ($root.Files.Get $path) -1 }}
{{- $obj := fromYaml ($doc | replace "kiln-system" $ns) }}
{{- if and $obj $obj.kind }}
{{- if and $root.Values.certManager.enabled (has $obj.kind (list "MutatingWebhookConfiguration" "ValidatingWebhookConfiguration")) }}
{{- $_ := set $obj.metadata "annotations" (merge (dict "cert-manager.io/inject-ca-from" (printf "%s/kiln-webhook-tls" $ns)) ($obj.metadata.annotations | default dict)) }}
{{- end }}
---
# Source: {{ $path }}
{{ toYaml $obj }}
{{- end }}
{{- end }}
{{- end }}
{{- end -}}
