{{/*
The operator's permissions, in one place: exactly the calls docs/operator.md lists ("RBAC: exactly what the
operator calls") plus list/watch of every resource its kopf handlers watch; no wildcard, nothing more.
tests/chart compares the rules with both. Children are garbage-collected through ownerReferences, so there
is no delete verb.
*/}}

{{/* What the operator does inside a watched namespace. */}}
{{- define "tarot.namespacedRules" -}}
# The runs: watch them; kopf adds and removes its finalizer (patch); the status subresource.
- apiGroups: [tarot.dev]
  resources: [tarotruns]
  verbs: [get, list, watch, patch]
- apiGroups: [tarot.dev]
  resources: [tarotruns/status]
  verbs: [get, patch]
# Stage Jobs (patch: suspend/resume); their pods' termination messages carry the stage results.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [get, list, watch, create, patch]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch]
# The workspace PVC and the ConfigMap of the run's spec and policy (the ConfigMaps also watched: a kopf index
# of their data's digest lets a restarted operator find them unchanged without a request).
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [get, create, patch]
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, patch]
# The sandbox Service (and a multi-node phase's headless one), the progress ServiceAccount.
- apiGroups: [""]
  resources: [services, serviceaccounts]
  verbs: [get, create]
# The sandbox Deployment; watched (kopf index and event handlers) to see it become available.
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch]
- apiGroups: [networking.k8s.io]
  resources: [networkpolicies]
  verbs: [get, create]
# The progress Role (get/patch of the run's own status) and its binding.
- apiGroups: [rbac.authorization.k8s.io]
  resources: [roles, rolebindings]
  verbs: [get, create]
# Events on the run, through both event APIs.
- apiGroups: [""]
  resources: [events]
  verbs: [create, patch]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end }}

{{/* Cluster-scoped reads of kopf's discovery; granted only to a cluster-wide operator. */}}
{{- define "tarot.clusterRules" -}}
- apiGroups: [apiextensions.k8s.io]
  resources: [customresourcedefinitions]
  verbs: [list, watch]
- apiGroups: [""]
  resources: [namespaces]
  verbs: [list, watch]
{{- end }}

{{/* Leader election (replicaCount > 1): the release's Lease, in the release's namespace. */}}
{{- define "tarot.leaderElectionRules" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end }}
