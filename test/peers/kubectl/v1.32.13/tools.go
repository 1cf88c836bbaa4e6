// Keeps kubectl in the module graph; test/peers/provision.ts builds it.

//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kubectl"
