{{/* Names and labels, as in Flyte's flyteconnector chart. */}}

{{- define "adapter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "adapter.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "adapter.serviceAccountName" -}}
{{- default (include "adapter.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "adapter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "adapter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "adapter.labels" -}}
{{ include "adapter.selectorLabels" . }}
helm.sh/chart: {{ include "adapter.chart" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* A probe from values; with TLS, a gRPC probe goes to the plain health port (the kubelet speaks no TLS). */}}
{{- define "adapter.probe" -}}
{{- $root := index . 0 -}}
{{- $probe := deepCopy (index . 1 | default dict) -}}
{{- /* A gRPC probe checks the port the adapter serves health on: the gRPC port, or with TLS the plain
health port (the kubelet's gRPC probes speak no TLS). Never a port of its own: it follows the ports. */ -}}
{{- if and $probe (hasKey $probe "grpc") -}}
{{- $_ := set $probe.grpc "port" (ternary $root.Values.tls.healthPort $root.Values.ports.containerPort (not (empty $root.Values.tls.secretName))) -}}
{{- end -}}
{{- if $probe -}}
{{- toYaml $probe -}}
{{- end -}}
{{- end -}}
