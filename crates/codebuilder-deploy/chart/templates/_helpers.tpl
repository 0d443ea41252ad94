{{- define "app.selector" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "app.labels" -}}
{{ include "app.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: codebuilder
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* A process type other than web: its own name label, so that neither the web Deployment nor
the Service selects its pods. Called with (dict "root" $ "type" TYPE). */}}
{{- define "app.processSelector" -}}
app.kubernetes.io/name: {{ printf "%s-%s" .root.Chart.Name .type }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end }}

{{- define "app.processLabels" -}}
{{ include "app.processSelector" . }}
app.kubernetes.io/component: {{ .type }}
app.kubernetes.io/part-of: {{ .root.Chart.Name }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: codebuilder
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end }}

{{/* Pod settings shared by every process type: confined as far as the image allows (the
restricted Pod Security level when it runs as a non-root user), then the operator's values. */}}
{{- define "app.podSettings" -}}
automountServiceAccountToken: false
securityContext:
  seccompProfile:
    type: RuntimeDefault
  {{- with .Values.runAsUser }}
  runAsNonRoot: true
  runAsUser: {{ . }}
  {{- end }}
{{- if .Values.hostNetwork }}
hostNetwork: true
dnsPolicy: ClusterFirstWithHostNet
{{- end }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Every container's security context: no privilege escalation, and no capabilities for an
image that runs as a non-root user. */}}
{{- define "app.containerSecurity" -}}
securityContext:
  allowPrivilegeEscalation: false
  {{- if .Values.runAsUser }}
  capabilities:
    drop: [ALL]
  {{- end }}
{{- end }}
