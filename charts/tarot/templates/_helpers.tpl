{{/* Names, labels and the operator's image, shared by every template. */}}

{{- define "tarot.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tarot.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tarot.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tarot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "tarot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "tarot.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tarot
{{- end }}

{{- define "tarot.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tarot.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name must name an existing ServiceAccount when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tarot.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.registry }}
{{- printf "%s/%s:%s" .Values.image.registry .Values.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{/* The job images: the value, or the published image of this chart's appVersion. */}}
{{- define "tarot.trainerImage" -}}
{{- default (printf "ghcr.io/tarot-dev/tarot-trainer:%s" .Chart.AppVersion) .Values.defaults.trainerImage }}
{{- end }}
{{- define "tarot.sandboxImage" -}}
{{- default (printf "ghcr.io/tarot-dev/tarot-sandbox:%s" .Chart.AppVersion) .Values.defaults.sandboxImage }}
{{- end }}
{{- define "tarot.vllmServerImage" -}}
{{- default (include "tarot.trainerImage" .) .Values.defaults.vllmServerImage }}
{{- end }}

{{/* A map as KEY=VALUE,KEY=VALUE (sorted by key), the operator's list syntax. */}}
{{- define "tarot.keyValues" -}}
{{- $pairs := list }}
{{- range $key, $value := . }}
{{- $pairs = append $pairs (printf "%s=%s" $key $value) }}
{{- end }}
{{- join "," $pairs }}
{{- end }}
