"""A kubelet stand-in for kwok nodes: runs each scheduled pod's first container as a local process.

kwok fakes nodes but runs nothing. For pods that land on those nodes, this package does the kubelet's
part with real processes: it prepares the container's environment and volumes, starts the command,
writes CRI-format logs (served to `kubectl logs` by kwok's kubelet endpoint through a kwok `Logs`
object), and writes the outcome to the pod status so the real controllers (Job, GC) react to it.
Pods labelled `tarot.dev/pod-runner: skip` are left to kwok's own stages.
"""

SKIP_LABEL = "tarot.dev/pod-runner"
SKIP_VALUE = "skip"
