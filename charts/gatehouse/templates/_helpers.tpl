{{/* The chart's name, shortened to what a label value allows. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name of the release's objects: RELEASE-gatehouse, or RELEASE when it already says gatehouse. */}}
{{- define "gatehouse.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* What the Service, PodDisruptionBudget, HPA and NetworkPolicy select pods by. */}}
{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
{{ include "gatehouse.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatehouse
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "gatehouse.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "gatehouse.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "gatehouse.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
API versions: the GA one where the cluster serves it (and with `helm template`, which assumes a
current cluster), else the beta one that Kubernetes 1.20 has. The specs the chart writes are the
same under both.
*/}}
{{- define "gatehouse.pdb.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (not (.Capabilities.APIVersions.Has "policy/v1beta1/PodDisruptionBudget")) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}

{{- define "gatehouse.hpa.apiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "autoscaling/v2/HorizontalPodAutoscaler") (not (.Capabilities.APIVersions.Has "autoscaling/v2beta2/HorizontalPodAutoscaler")) -}}
autoscaling/v2
{{- else -}}
autoscaling/v2beta2
{{- end -}}
{{- end -}}

{{/* Namespaces the ClusterRole is bound in when watchNamespaces is set: those and the release's. */}}
{{- define "gatehouse.boundNamespaces" -}}
{{- $all := append .Values.watchNamespaces .Release.Namespace | uniq -}}
{{- toJson $all -}}
{{- end -}}

{{/*
Namespaces where the gateway reads Secrets through namespaced Roles: rbac.secretNamespaces (plus
the release's), else the bound namespaces when watchNamespaces is set; `[]` means cluster-wide
through the ClusterRole.
*/}}
{{- define "gatehouse.secretNamespaces" -}}
{{- if .Values.rbac.secretNamespaces -}}
{{- toJson (append .Values.rbac.secretNamespaces .Release.Namespace | uniq) -}}
{{- else if .Values.watchNamespaces -}}
{{- include "gatehouse.boundNamespaces" . -}}
{{- else -}}
[]
{{- end -}}
{{- end -}}
