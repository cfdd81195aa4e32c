{{- define "scalestack.labels" -}}
app.kubernetes.io/name: scalestack-operator
app.kubernetes.io/part-of: scalestack
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{- define "scalestack.selector" -}}
app.kubernetes.io/name: scalestack-operator
app.kubernetes.io/part-of: scalestack
{{- end }}

{{- define "scalestack.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}:{{ $tag }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end }}
