// CoreDNS with only the plugins the local cluster's DNS needs (built by hack/build-cluster-tools.sh).
// Importing a plugin registers it; github.com/coredns/coredns/core/plugin would import all ~60 of them
// (cloud DNS providers included), which is most of CoreDNS's build time.
package main

import (
	"github.com/coredns/coredns/coremain"

	_ "github.com/coredns/coredns/plugin/bind"
	_ "github.com/coredns/coredns/plugin/cache"
	_ "github.com/coredns/coredns/plugin/errors"
	_ "github.com/coredns/coredns/plugin/health"
	_ "github.com/coredns/coredns/plugin/kubernetes"
	_ "github.com/coredns/coredns/plugin/log"
	_ "github.com/coredns/coredns/plugin/ready"
)

func main() { coremain.Run() }
