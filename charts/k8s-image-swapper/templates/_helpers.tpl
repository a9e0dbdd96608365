{{/*
Names. Every object is named after the release (fullname), with a suffix per
component; nothing hard-codes a namespace: everything lives in the release's.
*/}}
{{- define "k8s-image-swapper.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "k8s-image-swapper.fullname" -}}
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

{{/* fullname-SUFFIX, kept within 63 characters: (list . "suffix") */}}
{{- define "k8s-image-swapper.suffixed" -}}
{{- $root := index . 0 }}
{{- $suffix := index . 1 }}
{{- $base := include "k8s-image-swapper.fullname" $root | trunc (int (sub 62 (len $suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $base $suffix }}
{{- end }}

{{- define "k8s-image-swapper.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels on every object; commonLabels (values rendered with tpl, as the original chart did)
never reach selectors. */}}
{{- define "k8s-image-swapper.labels" -}}
helm.sh/chart: {{ include "k8s-image-swapper.chart" . }}
{{ include "k8s-image-swapper.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: k8s-image-swapper
{{- range $key, $value := .Values.commonLabels }}
{{ $key }}: {{ tpl (toString $value) $ | quote }}
{{- end }}
{{- end }}

{{- define "k8s-image-swapper.selectorLabels" -}}
app.kubernetes.io/name: {{ include "k8s-image-swapper.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The webhook pods' component: "app", as in the original chart, whose Deployment (same name,
same selector: selectors cannot change) an upgrade from it keeps. */}}
{{- define "k8s-image-swapper.webhookComponent" -}}app{{- end }}

{{/* Labels and selector labels of one component: (list . "webhook") */}}
{{- define "k8s-image-swapper.componentLabels" -}}
{{ include "k8s-image-swapper.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "k8s-image-swapper.componentSelectorLabels" -}}
{{ include "k8s-image-swapper.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{/* The webhook's service account (the original chart's name, which IRSA trust policies name). */}}
{{- define "k8s-image-swapper.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "k8s-image-swapper.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "k8s-image-swapper.proxyServiceAccountName" -}}
{{- if .Values.proxy.serviceAccount.create }}
{{- default (include "k8s-image-swapper.suffixed" (list . "proxy")) .Values.proxy.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.proxy.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Service account annotations of the proxy: its own, else the webhook's (IRSA, Workload Identity). */}}
{{- define "k8s-image-swapper.proxyServiceAccountAnnotations" -}}
{{- if .Values.proxy.serviceAccount.annotations }}
{{- toYaml .Values.proxy.serviceAccount.annotations }}
{{- else if .Values.proxy.serviceAccount.inheritAnnotations }}
{{- with .Values.serviceAccount.annotations }}
{{- toYaml . }}
{{- end }}
{{- end }}
{{- end }}

{{- define "k8s-image-swapper.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}

{{- define "k8s-image-swapper.proxyImage" -}}
{{- $repo := .Values.proxy.image.repository | default .Values.image.repository }}
{{- $tag := .Values.proxy.image.tag | default .Values.image.tag | default .Chart.AppVersion }}
{{- printf "%s:%s" $repo $tag }}
{{- end }}

{{- define "k8s-image-swapper.proxyImagePullPolicy" -}}
{{- .Values.proxy.image.pullPolicy | default .Values.image.pullPolicy }}
{{- end }}

{{/* The Service the API server calls, and the TLS secret it serves with. */}}
{{- define "k8s-image-swapper.serviceName" -}}
{{- include "k8s-image-swapper.fullname" . }}
{{- end }}

{{- define "k8s-image-swapper.tlsSecretName" -}}
{{- if .Values.certmanager.enabled }}
{{- include "k8s-image-swapper.suffixed" (list . "cert") }}
{{- else }}
{{- include "k8s-image-swapper.suffixed" (list . "tls") }}
{{- end }}
{{- end }}

{{/* Paths inside the containers. */}}
{{- define "k8s-image-swapper.configDir" -}}/etc/k8s-image-swapper{{- end }}
{{- define "k8s-image-swapper.configFile" -}}/etc/k8s-image-swapper/config.yml{{- end }}
{{- define "k8s-image-swapper.tlsDir" -}}/etc/k8s-image-swapper/tls{{- end }}

{{/*
The config file: the config value as given (the original's keys), rendered
verbatim. When target.type is set, target blocks of other kinds are dropped:
they are ignored by the binary anyway and are usually left over from merging
several values files.
*/}}
{{- define "k8s-image-swapper.configData" -}}
{{- $c := include "k8s-image-swapper.userConfig" . | fromYaml }}
{{- if .Values.hub.enabled }}
{{- /* The webhook and the node proxies ask the hub first (node proxies by its Service's
address: see the DaemonSet); with the store in the hub, the hub is their target. */}}
{{- $hub := get $c "hub" | default dict }}
{{- $_ := set $hub "url" (printf "http://%s" (include "k8s-image-swapper.hubHost" .)) }}
{{- $_ := set $hub "timeout" .Values.hub.timeout }}
{{- $_ := set $c "hub" $hub }}
{{- if eq (include "k8s-image-swapper.hubHoldsStore" .) "true" }}
{{- $_ := set $c "target" (dict "type" "generic" "generic" (dict "registry" (include "k8s-image-swapper.hubHost" .) "insecure" true)) }}
{{- end }}
{{- end }}
{{- if $c }}
{{- toYaml $c }}
{{- else }}
{{- "{}" }}
{{- end }}
{{- end }}

{{/* The config value as given, target blocks of other kinds than target.type dropped. */}}
{{- define "k8s-image-swapper.userConfig" -}}
{{- $c := deepCopy (.Values.config | default dict) }}
{{- $t := get $c "target" }}
{{- if and (kindIs "map" $t) (get $t "type") }}
{{- range $kind := list "aws" "gcp" "generic" "local" }}
{{- if ne $kind (get $t "type") }}
{{- $_ := unset $t $kind }}
{{- end }}
{{- end }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* The hub's config: the config as given; with the store in the hub, its local target on the
hub's volume, named after the hub's Service. */}}
{{- define "k8s-image-swapper.hubConfigData" -}}
{{- $c := include "k8s-image-swapper.userConfig" . | fromYaml }}
{{- if eq (include "k8s-image-swapper.hubHoldsStore" .) "true" }}
{{- $t := get $c "target" | default dict }}
{{- $local := get $t "local" | default dict }}
{{- $_ := set $local "path" "/var/lib/k8s-image-swapper/store" }}
{{- $_ := set $local "registry" (include "k8s-image-swapper.hubHost" .) }}
{{- $_ := set $c "target" (dict "type" "local" "local" $local) }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* The hub's object names and the host:port pods reach its Service at. */}}
{{- define "k8s-image-swapper.hubName" -}}
{{- include "k8s-image-swapper.suffixed" (list . "hub") }}
{{- end }}

{{/* Where the webhook's token for the hub (audience k8s-image-swapper-hub) is mounted. */}}
{{- define "k8s-image-swapper.hubTokenDir" -}}
/var/run/secrets/k8s-image-swapper/hub
{{- end }}

{{- define "k8s-image-swapper.hubHost" -}}
{{- printf "%s.%s.svc:%d" (include "k8s-image-swapper.hubName" .) .Release.Namespace (int .Values.hub.port) }}
{{- end }}

{{/* The environment variables Kubernetes gives pods for the hub's Service (its ClusterIP and port):
node proxies reach the hub by them, without cluster DNS. */}}
{{- define "k8s-image-swapper.hubServiceEnv" -}}
{{- include "k8s-image-swapper.hubName" . | upper | replace "-" "_" }}
{{- end }}

{{/* "true" when the hub holds the embedded store: the hub is on and the target is local (type
local, or no target of another kind, as the binary infers it). */}}
{{- define "k8s-image-swapper.hubHoldsStore" -}}
{{- $t := get (.Values.config | default dict) "target" | default dict }}
{{- $type := get $t "type" }}
{{- if not $type }}
{{- range $kind := list "aws" "gcp" "generic" }}
{{- if get $t $kind }}
{{- $type = $kind }}
{{- end }}
{{- end }}
{{- end }}
{{- and .Values.hub.enabled (or (not $type) (eq $type "local")) }}
{{- end }}

{{/* The config without the keys only the webhook reads: changing those does not restart every node's proxy. dryRun stays: the proxy and the node setup honour it. */}}
{{- define "k8s-image-swapper.proxyConfigData" -}}
{{- $c := include "k8s-image-swapper.configData" . | fromYaml }}
{{- $c = omit $c "imageSwapPolicy" "imageCopyPolicy" "imageCopyDeadline" "secretReader" "listenAddress" "tlsCertFile" "tlsKeyFile" }}
{{- if kindIs "map" (get $c "source") }}
{{- $_ := set $c "source" (omit (get $c "source") "filters") }}
{{- end }}
{{- toYaml $c }}
{{- end }}

{{/* The proxy's address: loopback with host networking, else all addresses of the pod. */}}
{{- define "k8s-image-swapper.proxyListenAddress" -}}
{{- if .Values.proxy.hostNetwork }}
{{- printf "127.0.0.1:%d" (int .Values.proxy.port) }}
{{- else }}
{{- printf ":%d" (int .Values.proxy.port) }}
{{- end }}
{{- end }}

{{/* The URL containerd on the node reaches the proxy at (hosts.toml). */}}
{{- define "k8s-image-swapper.proxyURL" -}}
{{- if .Values.proxy.hostNetwork }}
{{- printf "http://127.0.0.1:%d" (int .Values.proxy.port) }}
{{- else }}
{{- printf "http://$(NODE_IP):%d" (int .Values.proxy.port) }}
{{- end }}
{{- end }}

{{/* containerd's folders as mounted in the node-setup containers, under /host. */}}
{{- define "k8s-image-swapper.hostCertsParent" -}}
{{- dir (clean .Values.proxy.containerd.certsDir) }}
{{- end }}

{{/* Environment of the containers that talk to the target. */}}
{{- define "k8s-image-swapper.awsEnv" -}}
{{- if .Values.awsSecretName }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.awsSecretName }}
      key: {{ .Values.awsSecretKeys.accessKeyID }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.awsSecretName }}
      key: {{ .Values.awsSecretKeys.secretAccessKey }}
{{- end }}
{{- end }}

{{/* Checks that fail early with a message instead of a broken install. */}}
{{- define "k8s-image-swapper.validate" -}}
{{- if not (hasPrefix "/" .Values.proxy.containerd.certsDir) }}
{{- fail "proxy.containerd.certsDir must be an absolute path on the node" }}
{{- end }}
{{- if and .Values.autoscaling.enabled (not .Values.autoscaling.targetCPUUtilizationPercentage) (not (index .Values.autoscaling "targetMemoryUtilizationPercentage")) }}
{{- fail "autoscaling.enabled: set targetCPUUtilizationPercentage or targetMemoryUtilizationPercentage" }}
{{- end }}
{{- if and .Values.proxy.containerd.configFile (not (hasPrefix "/" .Values.proxy.containerd.configFile)) }}
{{- fail "proxy.containerd.configFile must be an absolute path on the node, or empty" }}
{{- end }}
{{- if and (eq (include "k8s-image-swapper.hubHoldsStore" .) "true") (gt (int .Values.hub.replicaCount) 1) }}
{{- fail "hub.replicaCount > 1 with a local target: each replica's store would be its own volume. Use one replica, or an OCI registry (target.type generic) or a cloud registry as the target" }}
{{- end }}
{{- end }}

{{/* An int-or-string value: "50%" stays a string, "1" and 1 become the number 1. */}}
{{- define "k8s-image-swapper.intOrString" -}}
{{- $s := toString . }}
{{- if regexMatch "^[0-9]+$" $s }}
{{- $s }}
{{- else }}
{{- $s | quote }}
{{- end }}
{{- end }}

{{/*
A volume source from values: Helm merges a user's map into the default one, so setting
`hostPath:` on top of the default `emptyDir:` would give both. When there is more than one
source, the default emptyDir goes.
*/}}
{{- define "k8s-image-swapper.volumeSource" -}}
{{- $v := deepCopy (. | default dict) }}
{{- if gt (len (keys $v)) 1 }}
{{- $v = omit $v "emptyDir" }}
{{- end }}
{{- if $v }}
{{- toYaml $v }}
{{- else }}
{{- "emptyDir: {}" }}
{{- end }}
{{- end }}
