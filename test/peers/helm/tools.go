// Keeps helm in the module graph; test/peers/provision.ts builds it.

//go:build tools

package tools

import _ "helm.sh/helm/v3/cmd/helm"
