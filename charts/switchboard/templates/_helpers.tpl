{{/*
The chart name, or nameOverride; used in the app.kubernetes.io/name label.
*/}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every resource name: fullnameOverride, else "<release>-<name>", or just the release
name when it already contains the chart name. Truncated to 63 characters (DNS label limit).
*/}}
{{- define "switchboard.fullname" -}}
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

{{/*
"<chart>-<version>" for the helm.sh/chart label.
*/}}
{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Labels that select the DaemonSet's pods. They must never change between releases: a DaemonSet's
selector is immutable.
*/}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Labels on every object the chart creates.
*/}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: service-proxy
app.kubernetes.io/part-of: switchboard
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
The ServiceAccount the pods run as.
*/}}
{{- define "switchboard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "switchboard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The image reference; the tag defaults to the chart's appVersion.
*/}}
{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/*
The port of config.healthzBindAddress ("0.0.0.0:10256" -> 10256, "[::]:10256" -> 10256); the
schema guarantees the address ends in ":<port>".
*/}}
{{- define "switchboard.healthzPort" -}}
{{- regexFind "[0-9]+$" .Values.config.healthzBindAddress }}
{{- end }}

{{/*
The port of config.metricsBindAddress, or nothing when metrics are off ("").
*/}}
{{- define "switchboard.metricsPort" -}}
{{- with .Values.config.metricsBindAddress }}{{ regexFind "[0-9]+$" . }}{{ end }}
{{- end }}

{{/*
Where kubeconfig.fromConfigMap is mounted, and the file passed as --kubeconfig.
*/}}
{{- define "switchboard.kubeconfigDir" -}}
/var/lib/switchboard
{{- end }}
{{- define "switchboard.kubeconfigFile" -}}
{{ include "switchboard.kubeconfigDir" . }}/kubeconfig.conf
{{- end }}

{{/*
Fails the install unless the proxy has a way to reach the API server that does not depend on the
Service rules it is about to write: apiServer.host, kubeconfig.fromConfigMap, or an explicit
apiServer.viaClusterIP.
*/}}
{{- define "switchboard.checkApiServer" -}}
{{- $host := .Values.apiServer.host }}
{{- $configMap := .Values.kubeconfig.fromConfigMap.name }}
{{- $clusterIP := .Values.apiServer.viaClusterIP }}
{{- $configKubeconfig := "" }}
{{- with .Values.config.clientConnection }}{{ $configKubeconfig = .kubeconfig | default "" }}{{ end }}
{{- if and $host $configMap }}
{{- fail "\n\napiServer.host and kubeconfig.fromConfigMap both say how to reach the API server: set one of them." }}
{{- end }}
{{- if and $clusterIP (or $host $configMap) }}
{{- fail "\n\napiServer.viaClusterIP: true asks for the kubernetes Service's ClusterIP, but apiServer.host or kubeconfig.fromConfigMap is set too: set one of them." }}
{{- end }}
{{- if and $configKubeconfig (not $configMap) }}
{{- fail (printf "\n\nconfig.clientConnection.kubeconfig is %q, a file the pod does not have. Set kubeconfig.fromConfigMap (e.g. name=kube-proxy, key=kubeconfig.conf on kubeadm clusters) to mount one (it is passed as --kubeconfig, which takes precedence), or leave config.clientConnection.kubeconfig empty and use apiServer.host." $configKubeconfig) }}
{{- end }}
{{- if not (or $host $configMap $clusterIP) }}
{{- fail `

Switchboard needs the API server's own address: set apiServer.host (and apiServer.port, 6443 by
default) or kubeconfig.fromConfigMap.

Why: without them the pod would use its in-cluster default, the ClusterIP of the "kubernetes"
Service (e.g. 10.96.0.1). A ClusterIP is virtual: it leads to the API server only once a service
proxy has written this node's Service rules, and Switchboard is that service proxy. On a node whose
rules are empty (a new or autoscaled node, a reboot without saved rules, a cluster created without
kube-proxy) it could never connect, so the node would never get any Service rules.

  --set apiServer.host=<control-plane IP or DNS name, or its load balancer> [--set apiServer.port=6443]
  --set kubeconfig.fromConfigMap.name=kube-proxy   (kubeadm clusters: reuses kubeconfig.conf)
  --set apiServer.viaClusterIP=true                (only if something else guarantees the rules)` }}
{{- end }}
{{- end }}

{{/*
V8's old-generation heap cap in MiB for NODE_OPTIONS, or nothing: maxOldSpaceSizeMiB when set (0 is
no cap), else 70% of resources.limits.memory when that is in whole Mi or Gi.
*/}}
{{- define "switchboard.maxOldSpaceMiB" -}}
{{- $set := .Values.maxOldSpaceSizeMiB -}}
{{- if kindIs "invalid" $set -}}
{{- $limit := toString (dig "limits" "memory" "" (.Values.resources | default dict)) -}}
{{- $mib := 0 -}}
{{- if regexMatch "^[0-9]+Gi$" $limit -}}
{{- $mib = mul (atoi (trimSuffix "Gi" $limit)) 1024 -}}
{{- else if regexMatch "^[0-9]+Mi$" $limit -}}
{{- $mib = atoi (trimSuffix "Mi" $limit) -}}
{{- end -}}
{{- if gt (int $mib) 0 -}}{{ div (mul $mib 7) 10 }}{{- end -}}
{{- else if gt (int $set) 0 -}}
{{- $set -}}
{{- end -}}
{{- end }}
